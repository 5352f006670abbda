# SPDX-License-Identifier: Apache-2.0
# Fault-injection tests (tests/fault/test_*.c): the library's engines on
# stores that fail for real (SQLite full or read-only through the test hooks
# of store.h) or on the memory store's injected failures. Like unit tests, one
# cmocka program each; they may use the unit tests' server harness.
file(GLOB CPNS_FAULT_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fault/test_*.c)
foreach(src ${CPNS_FAULT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE cpns_test_support)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/unit)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS fault TIMEOUT 120)
endforeach()
