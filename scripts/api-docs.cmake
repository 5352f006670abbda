# SPDX-License-Identifier: Apache-2.0
# Runs Doxygen with docs/Doxyfile into OUT (OUT/html) and fails on any warning:
# the CMake target api-docs (make docs) and the test api_docs (tests/docs.cmake).
#   cmake -DDOXYGEN=/usr/bin/doxygen -DSOURCE_DIR=... -DOUT=... [-DVERSION=x.y.z]
#         [-DCHECK=ON] -P scripts/api-docs.cmake
# CHECK=ON (the test) also checks what a run without warnings cannot show by
# itself: Doxygen warns about undocumented functions only in a file that has a
# @file comment, so every header of the INPUT must have its page, every
# CPNS_API declaration must be on its header's page and no CPNS_TESTING hook
# may be.
if(NOT DOXYGEN)
  message(FATAL_ERROR "doxygen not found: scripts/install-deps.sh --build installs it "
                      "(package doxygen), then configure again")
endif()
foreach(var SOURCE_DIR OUT)
  if(NOT ${var})
    message(FATAL_ERROR "api-docs.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
set(log ${OUT}/warnings.log)
# docs/Doxyfile, then what this run changes: Doxygen reads a later setting over an earlier one.
file(WRITE ${OUT}/Doxyfile "@INCLUDE = ${SOURCE_DIR}/docs/Doxyfile\n"
                           "OUTPUT_DIRECTORY = ${OUT}\n"
                           "WARN_LOGFILE = ${log}\n"
                           "PROJECT_NUMBER = ${VERSION}\n")
execute_process(COMMAND ${DOXYGEN} ${OUT}/Doxyfile WORKING_DIRECTORY ${SOURCE_DIR}
                RESULT_VARIABLE rv OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(warnings "")
if(EXISTS ${log})
  file(READ ${log} warnings)
endif()
if(NOT rv EQUAL 0 OR NOT warnings STREQUAL "")
  message(FATAL_ERROR "doxygen failed (exit ${rv}) or warned:\n${warnings}\n${out}\n${err}")
endif()
if(NOT EXISTS ${OUT}/html/index.html)
  message(FATAL_ERROR "doxygen wrote no ${OUT}/html/index.html")
endif()
message(STATUS "API reference: ${OUT}/html/index.html")
if(NOT CHECK)
  return()
endif()

# The headers of the INPUT: include/cpns/*.h minus the EXCLUDE of docs/Doxyfile.
file(READ ${SOURCE_DIR}/docs/Doxyfile doxyfile)
string(REGEX MATCH "\nEXCLUDE *=[^\n]*" exclude "${doxyfile}")
string(REGEX REPLACE "\nEXCLUDE *= *" "" exclude "${exclude}")
separate_arguments(exclude)
file(GLOB headers RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/include/cpns/*.h)
list(REMOVE_ITEM headers ${exclude})
list(LENGTH headers n_headers)
if(n_headers LESS 8)
  message(FATAL_ERROR "only ${n_headers} headers to document (${headers}): wrong SOURCE_DIR?")
endif()
set(n_api 0)
foreach(h ${headers})
  get_filename_component(name ${h} NAME_WE)
  # Doxygen doubles the underscores of a file name in its page's name (store_db.h: store__db_8h.html).
  string(REPLACE "_" "__" name "${name}")
  set(page ${OUT}/html/${name}_8h.html)
  if(NOT EXISTS ${page})
    message(FATAL_ERROR "${h} has no page in the API reference (no /** @file */ comment?)")
  endif()
  file(READ ${page} html)
  file(READ ${SOURCE_DIR}/${h} src)
  # Without the comments: they show declarations as examples (export.h).
  string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" src "${src}")
  # Declarations span lines: the name is the first identifier followed by
  # "(" (a function) or "[" (an exported table) after the macro.
  string(REGEX MATCHALL "CPNS_API[^;(\\[]*[ *](cpns_[a-z0-9_]+) *[(\\[]" decls "${src}")
  foreach(d ${decls})
    string(REGEX REPLACE ".*[ *](cpns_[a-z0-9_]+) *[(\\[]$" "\\1" sym "${d}")
    math(EXPR n_api "${n_api} + 1")
    if(NOT html MATCHES ">${sym}<")
      message(FATAL_ERROR "${sym} (${h}) is not in the API reference")
    endif()
  endforeach()
  string(REGEX MATCHALL "CPNS_TESTING[^;(]*[ *](cpns_[a-z0-9_]+) *\\(" hooks "${src}")
  foreach(d ${hooks})
    string(REGEX REPLACE ".*[ *](cpns_[a-z0-9_]+) *\\($" "\\1" sym "${d}")
    if(html MATCHES "${sym}")
      message(FATAL_ERROR "the test hook ${sym} (${h}) is in the API reference")
    endif()
  endforeach()
endforeach()
if(n_api LESS 50)
  message(FATAL_ERROR "only ${n_api} CPNS_API declarations found in ${headers}")
endif()
message(STATUS "${n_headers} headers, ${n_api} CPNS_API declarations, each documented")
