# SPDX-License-Identifier: Apache-2.0
# The Wireshark dissector (issue #13 item 9), label "wireshark":
# wireshark_dissector captures a real plain-TCP distribution of the daemons in
# a network namespace and checks what `tshark -X lua_script:cpns.lua` shows
# (tests/wireshark/capture.sh). Skipped (77) without tshark/tcpdump or the
# privilege to create a network namespace and capture (root).
add_test(NAME wireshark_dissector
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/wireshark/capture.sh ${CMAKE_BINARY_DIR}/bin
                 ${CMAKE_SOURCE_DIR}/packaging/wireshark/cpns.lua)
set_tests_properties(wireshark_dissector PROPERTIES LABELS wireshark SKIP_RETURN_CODE 77
                                                    TIMEOUT ${CPNS_PROGRAM_TIMEOUT})
