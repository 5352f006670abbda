# SPDX-License-Identifier: Apache-2.0
# The ABI of libcpns.so and libcpns-store.so (include/cpns/export.h): each
# exports exactly the functions and objects that its public headers declare
# with CPNS_API (libcpns-store: store_db.h; libcpns: every other header), no
# internal symbol and no CPNS_TESTING hook (include/cpns/testing.h, not
# installed). libcpns.so also exports the CPNS_PRIVATE helpers of
# lib/internal.h and lib/crypto_internal.h that libcpns-store.so calls.
add_test(NAME abi_exports
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-abi.sh $<TARGET_FILE:cpns_shared>
                 ${CMAKE_SOURCE_DIR}/include/cpns --except store_db.h
                 --private ${CMAKE_SOURCE_DIR}/lib/internal.h
                 --private ${CMAKE_SOURCE_DIR}/lib/crypto_internal.h)
add_test(NAME abi_exports_store
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-abi.sh $<TARGET_FILE:cpns_store_shared>
                 ${CMAKE_SOURCE_DIR}/include/cpns --only store_db.h)
set_tests_properties(abi_exports abi_exports_store PROPERTIES LABELS abi TIMEOUT 60)
