# SPDX-License-Identifier: Apache-2.0
# The bash completion of cpnsctl (issue #13 item 7), label "completion":
# completion_cpnsctl sources packaging/bash-completion/cpnsctl in bash and
# checks the completions of a few command lines (tests/completion/);
# completion_install checks that make install puts it where bash-completion
# looks (share/bash-completion/completions/cpnsctl).
if(NOT CMAKE_SCRIPT_MODE_FILE)
  include(GNUInstallDirs)
  find_program(CPNS_BASH bash)
  if(CPNS_BASH)
    add_test(NAME completion_cpnsctl
             COMMAND ${CPNS_BASH} ${CMAKE_CURRENT_LIST_DIR}/completion/test-completion.sh
                     ${CMAKE_SOURCE_DIR}/packaging/bash-completion/cpnsctl)
    set_tests_properties(completion_cpnsctl PROPERTIES LABELS completion TIMEOUT 60)
  endif()
  add_test(NAME completion_install
           COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR}
                   -DPREFIX=${CMAKE_BINARY_DIR}/install-completion
                   -DDATADIR=${CMAKE_INSTALL_DATADIR} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(completion_install PROPERTIES LABELS "completion;install" TIMEOUT 120)
  return()
endif()

# The "completion" component only (a whole install writes cpns.pc into the
# build directory, which install_pkgconfig may be doing at the same time).
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --component completion
                        --prefix ${PREFIX}
                RESULT_VARIABLE rv OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rv EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rv}):\n${out}\n${err}")
endif()
if(NOT EXISTS ${PREFIX}/${DATADIR}/bash-completion/completions/cpnsctl)
  message(FATAL_ERROR "make install did not install ${DATADIR}/bash-completion/completions/cpnsctl")
endif()
file(REMOVE_RECURSE ${PREFIX})
