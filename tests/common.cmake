# SPDX-License-Identifier: Apache-2.0
# Tests of the programs' shared layer (src/common): tests/common/test_*.c,
# linked with cpns_daemon (the target is defined under src/, configured later).
file(GLOB CPNS_COMMON_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/common/test_*.c)
foreach(src ${CPNS_COMMON_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE cpns_test_support cpns_daemon)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 60)
endforeach()
