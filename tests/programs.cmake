# SPDX-License-Identifier: Apache-2.0
# Program tests: each tests/programs/test_*.c is a cmocka program that runs
# the built daemons and tools (fork/exec from CPNS_BIN_DIR) and checks their
# exit codes, output and behaviour on loopback sockets.
file(GLOB CPNS_PROGRAM_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/programs/test_*.c)
if(CPNS_PROGRAM_TESTS)
  add_library(cpns_progtest STATIC ${CMAKE_CURRENT_LIST_DIR}/programs/progtest.c)
  target_link_libraries(cpns_progtest PUBLIC cpns_test_support)
  target_include_directories(cpns_progtest PUBLIC ${CMAKE_CURRENT_LIST_DIR}/programs)
endif()
foreach(src ${CPNS_PROGRAM_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE cpns_progtest)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  # The programs are defined in src/, which is added after tests/: depend on them by name.
  add_dependencies(${name} cpns-gw cpns-pne)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "CPNS_BIN_DIR=${CMAKE_BINARY_DIR}/bin;CPNS_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    TIMEOUT ${CPNS_PROGRAM_TIMEOUT})
endforeach()

# test_gw_failover runs real servers, GWs and PNEs through the integration
# harness (tests/integration/cluster.h); one case waits out a session timeout.
if(TARGET test_gw_failover)
  target_link_libraries(test_gw_failover PRIVATE cpns_it_harness)
  add_dependencies(test_gw_failover cpns-server cpnsctl)
  set_tests_properties(test_gw_failover PROPERTIES TIMEOUT 240)
endif()

# test_server_ha runs two cpns-servers on a throwaway PostgreSQL (tests/support/pg.h).
if(TARGET test_server_ha)
  add_dependencies(test_server_ha cpns-server cpnsctl)
  set_tests_properties(test_server_ha PROPERTIES TIMEOUT 300)
endif()

# test_config runs every daemon and cpnsctl --version.
if(TARGET test_config)
  add_dependencies(test_config cpns-server cpnsctl)
endif()

# test_sighup runs a TLS cluster through the integration harness.
if(TARGET test_sighup)
  target_link_libraries(test_sighup PRIVATE cpns_it_harness)
  add_dependencies(test_sighup cpns-server cpnsctl)
  set_tests_properties(test_sighup PROPERTIES TIMEOUT 240)
endif()
