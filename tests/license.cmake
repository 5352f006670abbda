# SPDX-License-Identifier: Apache-2.0
# The licence (issue #13 item 1), label "license": spdx_headers checks that
# every source file carries an SPDX-License-Identifier line
# (tests/license/check-spdx.sh).
add_test(NAME spdx_headers COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/license/check-spdx.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(spdx_headers PROPERTIES LABELS license TIMEOUT 300)
