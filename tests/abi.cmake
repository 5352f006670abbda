# SPDX-License-Identifier: Apache-2.0
# The ABI of libcpns.so (include/cpns/export.h): it exports exactly the
# functions and objects that the public headers declare with CPNS_API, no
# internal symbol and no CPNS_TESTING hook. The headers checked are
# include/cpns/*.h, which `make install` copies as they are.
add_test(NAME abi_exports
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-abi.sh $<TARGET_FILE:cpns_shared>
                 ${CMAKE_SOURCE_DIR}/include/cpns)
set_tests_properties(abi_exports PROPERTIES LABELS abi TIMEOUT 60)
