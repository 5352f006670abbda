# SPDX-License-Identifier: Apache-2.0
# Cluster tests (issue #12 item 6): tests/cluster/test_*.c, each a cmocka
# program running a private PostgreSQL (tests/support/pg.h), three cpns-server
# instances in --cluster mode, real cpns-gw given every instance's address and
# the PNEs of cpns-loadgen fanout, through the integration harness
# (tests/integration/harness.h; cpns_it_harness is defined by
# integration.cmake, resolved when CMake generates). Labelled "cluster"
# (ctest -L cluster; `make test-cluster N=20` runs them N times, one seed
# each). Skipped (77) while cpns-server does not accept --cluster.
# CPNS_CLUSTER_SEED drives each scenario's choices (printed when unset);
# CPNS_CLUSTER_MEMBERS overrides the group size. The ASan build runs half the
# members: its daemons are 3-5x slower. valgrind (scripts/valgrind.sh) runs
# only the unit and e2e tests, as for the other program tests.
file(GLOB CPNS_CLUSTER_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cluster/test_*.c)
if(CPNS_CLUSTER_TESTS)
  add_library(cpns_cluster_world STATIC ${CMAKE_CURRENT_LIST_DIR}/cluster/cworld.c)
  target_include_directories(cpns_cluster_world PUBLIC ${CMAKE_CURRENT_LIST_DIR}/cluster)
  target_link_libraries(cpns_cluster_world PUBLIC cpns_it_harness cpns_test_support)
endif()
set(CPNS_CLUSTER_ENV "CPNS_BIN_DIR=${CMAKE_BINARY_DIR}/bin;CPNS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
if(CPNS_SANITIZE)
  list(APPEND CPNS_CLUSTER_ENV "CPNS_CLUSTER_MEMBERS=150")
endif()
math(EXPR CPNS_CLUSTER_TIMEOUT "${CPNS_PROGRAM_TIMEOUT} * 2")
find_package(Threads REQUIRED)
foreach(src ${CPNS_CLUSTER_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE cpns_cluster_world Threads::Threads)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  # The programs are defined in src/, which is added after tests/: depend on them by name.
  add_dependencies(${name} cpns-server cpns-gw cpnsctl cpns-loadgen)
  add_test(NAME cluster_${name} COMMAND ${name})
  set_tests_properties(cluster_${name} PROPERTIES
    ENVIRONMENT "${CPNS_CLUSTER_ENV}"
    LABELS "cluster;postgresql"
    TIMEOUT ${CPNS_CLUSTER_TIMEOUT}
    SKIP_RETURN_CODE 77)
endforeach()
