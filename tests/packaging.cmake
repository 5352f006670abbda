# SPDX-License-Identifier: Apache-2.0
# Running as a service (issue #13 item 5), label "packaging":
#   systemd_units     systemd-analyze verify on packaging/systemd/*.service
#                     (tests/packaging/check-units.sh)
#   test_sd_notify    each daemon sends READY=1 once listening, STOPPING=1 on SIGTERM
#   test_journal_log  syslog priority prefixes and no timestamp under journald
# The packages themselves are tested by `make test-deb` (they install on the machine).
add_test(NAME systemd_units COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/packaging/check-units.sh
                                       ${CMAKE_SOURCE_DIR}/packaging/systemd ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(systemd_units PROPERTIES LABELS packaging TIMEOUT 60)

foreach(name test_sd_notify test_journal_log)
  add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/packaging/${name}.c)
  target_link_libraries(${name} PRIVATE cpns_progtest)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  # The programs are defined in src/, which is added after tests/: depend on them by name.
  add_dependencies(${name} cpns-server cpns-gw cpns-pne)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS packaging
    ENVIRONMENT "CPNS_BIN_DIR=${CMAKE_BINARY_DIR}/bin;CPNS_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    TIMEOUT ${CPNS_PROGRAM_TIMEOUT})
endforeach()
