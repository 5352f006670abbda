# SPDX-License-Identifier: Apache-2.0
# Integration tests: the real programs (build/bin) on loopback, driven by
# tests/integration/test_*.c through the harness of tests/integration/harness.h.
# Each is one CTest test labelled "integration" (ctest -L integration).
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)

add_library(cpns_it_harness STATIC ${CMAKE_CURRENT_SOURCE_DIR}/integration/harness.c
                                   ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster.c)
target_include_directories(cpns_it_harness PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/integration)
target_link_libraries(cpns_it_harness PUBLIC PkgConfig::CMOCKA PkgConfig::JANSSON)

# src/ is configured after tests/, so the programs are named by their source
# folders (one target per folder, named like it) rather than by TARGET checks.
set(CPNS_IT_PROGRAMS)
foreach(prog cpns-server cpns-gw cpns-pne cpnsctl)
  if(EXISTS ${CMAKE_SOURCE_DIR}/src/${prog}/CMakeLists.txt)
    list(APPEND CPNS_IT_PROGRAMS ${prog})
  endif()
endforeach()

file(GLOB CPNS_IT_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_*.c)
foreach(src ${CPNS_IT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  set(target it_${name})
  add_executable(${target} ${src})
  target_link_libraries(${target} PRIVATE cpns_it_harness)
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests
                                             OUTPUT_NAME ${name})
  if(CPNS_IT_PROGRAMS)
    add_dependencies(${target} ${CPNS_IT_PROGRAMS})
  endif()
  add_test(NAME integration_${name} COMMAND ${target})
  set_tests_properties(integration_${name} PROPERTIES
    ENVIRONMENT "CPNS_BIN_DIR=${CMAKE_BINARY_DIR}/bin;CPNS_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    LABELS integration
    TIMEOUT ${CPNS_PROGRAM_TIMEOUT}
    SKIP_RETURN_CODE 77)
endforeach()

# test_metrics_doc checks the PostgreSQL-only metrics on a private PostgreSQL too.
if(TARGET it_test_metrics_doc)
  target_link_libraries(it_test_metrics_doc PRIVATE cpns_test_support)
  set_tests_properties(integration_test_metrics_doc PROPERTIES LABELS "integration;postgresql")
endif()

# test_failover (issue #11 item 6) kills the active cpns-server of two on a
# private PostgreSQL (tests/support/pg.h) under 1,000 PNEs of cpns-loadgen fanout.
if(TARGET it_test_failover)
  target_link_libraries(it_test_failover PRIVATE cpns_test_support)
  add_dependencies(it_test_failover cpns-loadgen)
  math(EXPR CPNS_FAILOVER_TIMEOUT "${CPNS_PROGRAM_TIMEOUT} * 2")
  set_tests_properties(integration_test_failover PROPERTIES
    LABELS "integration;postgresql;failover"
    TIMEOUT ${CPNS_FAILOVER_TIMEOUT})
endif()
