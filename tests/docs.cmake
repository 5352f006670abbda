# SPDX-License-Identifier: Apache-2.0
# The API reference (issue #14 item 5), label "docs": api_docs runs Doxygen on
# the public headers with docs/Doxyfile and fails on any warning (an
# undocumented symbol, field or parameter, a broken reference), on a header
# without its page and on a CPNS_API declaration missing from it
# (scripts/api-docs.cmake). Without doxygen it fails, never skips:
# scripts/install-deps.sh --build installs it, so CI always runs it.
add_test(NAME api_docs
         COMMAND ${CMAKE_COMMAND} -DDOXYGEN=${CPNS_DOXYGEN} -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
                 -DOUT=${CMAKE_BINARY_DIR}/api-test -DVERSION=${PROJECT_VERSION} -DCHECK=ON
                 -P ${CMAKE_SOURCE_DIR}/scripts/api-docs.cmake)
set_tests_properties(api_docs PROPERTIES LABELS docs TIMEOUT 120)
