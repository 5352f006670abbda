# SPDX-License-Identifier: Apache-2.0
# The examples (examples/README.md) run as tests, labelled "examples"
# (ctest -L examples):
#   examples_keystore_custom  the key store checks over the memory and file
#                             backends and over examples/keystore-custom.c
#   examples_pkgconfig        both examples built from an installed tree with
#                             `cc $(pkg-config --cflags --libs cpns)` alone, and run
#                             (the fixture of the next test)
#   examples_pne_minimal      that pne-minimal, linked to the installed libcpns.so,
#                             as the PNE of a real cpns-server and cpns-gw (TLS
#                             between them): what a vendor builds reaches a server
# Included by tests/CMakeLists.txt, this file registers them; run with cmake -P
# (the last test's command), it is that check itself.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_executable(test_keystore_custom ${CMAKE_CURRENT_LIST_DIR}/examples/test_keystore_custom.c)
  target_link_libraries(test_keystore_custom PRIVATE cpns_test_support)
  target_include_directories(test_keystore_custom PRIVATE ${CMAKE_SOURCE_DIR}/examples)
  set_target_properties(test_keystore_custom PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                                        ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME examples_keystore_custom COMMAND test_keystore_custom)
  set_tests_properties(examples_keystore_custom PROPERTIES LABELS examples TIMEOUT 120)

  # cpns_it_harness is defined by integration.cmake, the programs and the
  # examples under src/ and examples/, all configured after this file: by name.
  add_executable(test_pne_minimal ${CMAKE_CURRENT_LIST_DIR}/examples/test_pne_minimal.c)
  target_link_libraries(test_pne_minimal PRIVATE cpns_it_harness)
  set_target_properties(test_pne_minimal PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                                    ${CMAKE_BINARY_DIR}/tests)
  add_dependencies(test_pne_minimal pne-minimal cpns-server cpns-gw cpns-pne cpnsctl)
  include(GNUInstallDirs)
  set(examples_prefix ${CMAKE_BINARY_DIR}/install-examples)
  add_test(NAME examples_pne_minimal COMMAND test_pne_minimal)
  set_tests_properties(examples_pne_minimal PROPERTIES
    ENVIRONMENT "CPNS_BIN_DIR=${CMAKE_BINARY_DIR}/bin;CPNS_SOURCE_DIR=${CMAKE_SOURCE_DIR};CPNS_EXAMPLES_DIR=${examples_prefix};LD_LIBRARY_PATH=${examples_prefix}/${CMAKE_INSTALL_LIBDIR}"
    FIXTURES_REQUIRED cpns_examples_installed
    LABELS examples
    TIMEOUT ${CPNS_PROGRAM_TIMEOUT}
    SKIP_RETURN_CODE 77)

  add_test(NAME examples_pkgconfig
           COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR} -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
                   -DPREFIX=${examples_prefix} -DLIBDIR=${CMAKE_INSTALL_LIBDIR}
                   -DCC=${CMAKE_C_COMPILER} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(examples_pkgconfig PROPERTIES LABELS "examples;install" TIMEOUT 120
                                                      FIXTURES_SETUP cpns_examples_installed)
  return()
endif()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rv OUTPUT_VARIABLE out ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rv EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rv}):\n${ARGN}\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

# A prefix of its own: install_pkgconfig (install.cmake) may run at the same time.
file(REMOVE_RECURSE ${PREFIX})
run("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
set(ENV{PKG_CONFIG_PATH} ${PREFIX}/${LIBDIR}/pkgconfig)
run("pkg-config --cflags --libs cpns" pkg-config --cflags --libs cpns)
separate_arguments(flags UNIX_COMMAND "${run_out}")

# Exactly the command line at the top of each example: nothing from the source tree.
foreach(example pne-minimal keystore-custom)
  run("cc ${example}.c against the installed libcpns" ${CC} -std=c11 -Wall -Wextra -Werror
      -o ${PREFIX}/${example} ${SOURCE_DIR}/examples/${example}.c ${flags})
endforeach()

set(ENV{LD_LIBRARY_PATH} ${PREFIX}/${LIBDIR})
# keystore-custom: two runs on one file (the second reopens what the first stored).
set(store ${PREFIX}/keystore-custom.keys)
foreach(round 1 2)
  run("keystore-custom (run ${round})" ${PREFIX}/keystore-custom ${store})
  if(NOT run_out MATCHES "^sg-example current 2 [0-9a-f]+ previous 1 [0-9a-f]+\nsg-other current 1 [0-9a-f]+$")
    message(FATAL_ERROR "unexpected output of keystore-custom (run ${round}):\n${run_out}")
  endif()
endforeach()
# pne-minimal: links and runs (its behaviour is examples_pne_minimal's): the usage, status 2.
execute_process(COMMAND ${PREFIX}/pne-minimal RESULT_VARIABLE rv ERROR_VARIABLE err)
if(NOT rv EQUAL 2 OR NOT err MATCHES "usage: pne-minimal")
  message(FATAL_ERROR "pne-minimal without arguments: status ${rv}, '${err}' (want 2 and the usage)")
endif()
message(STATUS "both examples built with pkg-config alone (${flags}) and ran")
