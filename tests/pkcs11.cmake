# SPDX-License-Identifier: Apache-2.0
# The PKCS#11 key store tests (issue #14 item 1), label "pkcs11": tests/pkcs11/
# on a throwaway SoftHSM2 token (tests/pkcs11/softhsm.h; skipped, exit 77, when
# SoftHSM2 is not installed). libcpns_p11fault.so (p11fault.c) is a PKCS#11
# module that passes every call to SoftHSM2 and fails on request like a token
# that is removed, reset or full.
add_library(cpns_p11fault MODULE ${CMAKE_CURRENT_LIST_DIR}/pkcs11/p11fault.c)
set_target_properties(cpns_p11fault PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests
                                               OUTPUT_NAME cpns_p11fault PREFIX lib)
target_link_libraries(cpns_p11fault PRIVATE ${CMAKE_DL_LIBS})

# No suppressions: under ASan (make test-sanitize) and valgrind memcheck
# (valgrind --leak-check=full, run by hand) SoftHSM2 2.6.1 leaks nothing and
# trips nothing, since every keystore's close ends in C_Finalize.
set(CPNS_P11_ENV "CPNS_SOURCE_DIR=${CMAKE_SOURCE_DIR};CPNS_BINARY_DIR=${CMAKE_BINARY_DIR};CPNS_BIN_DIR=${CMAKE_BINARY_DIR}/bin")

add_executable(test_keystore_pkcs11 ${CMAKE_CURRENT_LIST_DIR}/pkcs11/test_keystore_pkcs11.c)
target_link_libraries(test_keystore_pkcs11 PRIVATE cpns_test_support ${CMAKE_DL_LIBS})
target_include_directories(test_keystore_pkcs11 PRIVATE ${CMAKE_CURRENT_LIST_DIR}/unit)
set_target_properties(test_keystore_pkcs11 PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_dependencies(test_keystore_pkcs11 cpns_p11fault)
add_test(NAME pkcs11_keystore COMMAND test_keystore_pkcs11)
set_tests_properties(pkcs11_keystore PROPERTIES ENVIRONMENT "${CPNS_P11_ENV}" LABELS pkcs11
                     TIMEOUT 300 SKIP_RETURN_CODE 77)

# cpns-pne on a SoftHSM2 token against the real cpns-server and cpns-gw.
add_executable(it_test_pne_pkcs11 ${CMAKE_CURRENT_LIST_DIR}/pkcs11/test_pne_pkcs11.c)
target_link_libraries(it_test_pne_pkcs11 PRIVATE cpns_it_harness)
set_target_properties(it_test_pne_pkcs11 PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests
                                                    OUTPUT_NAME test_pne_pkcs11)
add_dependencies(it_test_pne_pkcs11 cpns_p11fault)
if(CPNS_IT_PROGRAMS)
  add_dependencies(it_test_pne_pkcs11 ${CPNS_IT_PROGRAMS})
endif()
add_test(NAME pkcs11_pne_delivery COMMAND it_test_pne_pkcs11)
set_tests_properties(pkcs11_pne_delivery PROPERTIES ENVIRONMENT "${CPNS_P11_ENV}"
                     LABELS "pkcs11;integration" TIMEOUT ${CPNS_PROGRAM_TIMEOUT} SKIP_RETURN_CODE 77)
