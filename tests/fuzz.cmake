# Corpus replay: for every harness fuzz/fuzz_<name>.c, the test replay_<name>
# runs fuzz/corpus/<name>/ through it in the normal (non-fuzzing) build, with
# the regular library. A new harness only needs its .c file and its corpus.
file(GLOB CPNS_FUZZ_HARNESSES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(src ${CPNS_FUZZ_HARNESSES})
  get_filename_component(harness ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" name ${harness})
  add_executable(replay_${name} ${src} ${CMAKE_SOURCE_DIR}/fuzz/replay.c)
  target_include_directories(replay_${name} PRIVATE ${CMAKE_SOURCE_DIR}/lib)
  target_link_libraries(replay_${name} PRIVATE cpns PkgConfig::CMOCKA)
  set_target_properties(replay_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME replay_${name}
           COMMAND replay_${name} ${CMAKE_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(replay_${name} PROPERTIES TIMEOUT 300)
endforeach()
