# SPDX-License-Identifier: Apache-2.0
# Corpus replay: for every harness fuzz/fuzz_<name>.c, the test replay_<name>
# runs fuzz/corpus/<name>/ through it in the normal (non-fuzzing) build, with
# the regular libraries (cpns_store brings cpns: fuzz_store_log needs both). A new harness only needs its .c file and its corpus.
file(GLOB CPNS_FUZZ_HARNESSES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(src ${CPNS_FUZZ_HARNESSES})
  get_filename_component(harness ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" name ${harness})
  add_executable(replay_${name} ${src} ${CMAKE_SOURCE_DIR}/fuzz/replay.c)
  target_include_directories(replay_${name} PRIVATE ${CMAKE_SOURCE_DIR}/lib)
  target_link_libraries(replay_${name} PRIVATE cpns_store PkgConfig::CMOCKA)
  set_target_properties(replay_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME replay_${name}
           COMMAND replay_${name} ${CMAKE_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(replay_${name} PROPERTIES TIMEOUT 300)
endforeach()

# The seed generator of the engine and key-store corpora (fuzz/gen_seeds.c):
# `build/tests/gen_seeds fuzz/corpus` rewrites them. Built with the tests so
# that it keeps compiling; not a test itself.
add_executable(gen_seeds ${CMAKE_SOURCE_DIR}/fuzz/gen_seeds.c)
target_include_directories(gen_seeds PRIVATE ${CMAKE_SOURCE_DIR}/lib)
target_link_libraries(gen_seeds PRIVATE cpns)
set_target_properties(gen_seeds PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
