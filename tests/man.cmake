# SPDX-License-Identifier: Apache-2.0
# The man pages of man/ (issue #13 item 3), label "man". Included by
# tests/CMakeLists.txt, this file registers the tests; run with cmake -P (the
# command of man_install), it is that test's check.
#
# man_<page>: tests/man/check-man.sh renders the page with groff -ww (no
# warning allowed) and compares a program's page with the live --help of the
# built program: the same long options, each default, the same commands.
# cpns.7's Return codes are compared with docs/PROTOCOL.md section 3.2.
# man_install: make install (its "man" component) puts every page in
# share/man/manN.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  include(GNUInstallDirs)
  file(GLOB CPNS_MAN_PAGES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/man/*.[0-9])
  set(CPNS_MAN_NAMES "")
  foreach(page ${CPNS_MAN_PAGES})
    get_filename_component(name ${page} NAME)
    get_filename_component(title ${page} NAME_WLE)
    list(APPEND CPNS_MAN_NAMES ${name})
    if(name MATCHES "\\.7$")
      set(against - ${CMAKE_SOURCE_DIR}/docs/PROTOCOL.md)
    else()
      set(against ${CMAKE_BINARY_DIR}/bin/${title})
    endif()
    add_test(NAME man_${title}
             COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/man/check-man.sh ${page} ${against})
    set_tests_properties(man_${title} PROPERTIES LABELS man TIMEOUT 60)
  endforeach()
  add_test(NAME man_install
           COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR}
                   -DPREFIX=${CMAKE_BINARY_DIR}/install-man -DMANDIR=${CMAKE_INSTALL_MANDIR}
                   "-DPAGES=${CPNS_MAN_NAMES}" -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(man_install PROPERTIES LABELS "man;install" TIMEOUT 60)
  return()
endif()

# The man component only: the whole install also writes cpns.pc into the build
# directory, which install_pkgconfig may be doing at the same time.
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --component man --prefix ${PREFIX}
                RESULT_VARIABLE rv OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rv EQUAL 0)
  message(FATAL_ERROR "cmake --install --component man failed (${rv}):\n${out}\n${err}")
endif()
list(LENGTH PAGES n)
if(n LESS 5)
  message(FATAL_ERROR "only ${n} man pages (${PAGES}): expected cpns.7, cpns-server.8, "
                      "cpns-gw.8, cpns-pne.8 and cpnsctl.1 at least")
endif()
foreach(page ${PAGES})
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  if(NOT EXISTS ${PREFIX}/${MANDIR}/man${section}/${page})
    message(FATAL_ERROR "make install did not install ${MANDIR}/man${section}/${page}")
  endif()
endforeach()
file(GLOB_RECURSE installed RELATIVE ${PREFIX} ${PREFIX}/*)
message(STATUS "installed: ${installed}")
