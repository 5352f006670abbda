# SPDX-License-Identifier: Apache-2.0
# `make install` checked end to end (DESIGN.md section 6): installs this
# build into ${CMAKE_BINARY_DIR}/install-test, then compiles, links and runs
# a small program against it with nothing but `pkg-config --cflags --libs cpns`.
# Included by tests/CMakeLists.txt, this file registers the test; run with
# cmake -P (the test's command), it is the check itself.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  include(GNUInstallDirs)
  add_test(NAME install_pkgconfig
           COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR}
                   -DPREFIX=${CMAKE_BINARY_DIR}/install-test -DLIBDIR=${CMAKE_INSTALL_LIBDIR}
                   -DCC=${CMAKE_C_COMPILER} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(install_pkgconfig PROPERTIES LABELS install TIMEOUT 120)
  return()
endif()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rv OUTPUT_VARIABLE out ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rv EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rv}):\n${ARGN}\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${PREFIX})
run("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})

foreach(f bin/cpns-server bin/cpns-gw bin/cpns-pne bin/cpnsctl include/cpns/cpns.h
          include/cpns/server.h ${LIBDIR}/libcpns.a ${LIBDIR}/libcpns.so
          ${LIBDIR}/pkgconfig/cpns.pc)
  if(NOT EXISTS ${PREFIX}/${f})
    message(FATAL_ERROR "make install did not install ${f} under ${PREFIX}")
  endif()
endforeach()

# The program uses the library's crypto, so linking it needs libcrypto behind libcpns.
set(ENV{PKG_CONFIG_PATH} ${PREFIX}/${LIBDIR}/pkgconfig)
run("pkg-config --cflags --libs cpns" pkg-config --cflags --libs cpns)
separate_arguments(flags UNIX_COMMAND "${run_out}")
string(FIND "${run_out}" "-I${PREFIX}/include" inc)
string(FIND "${run_out}" "-L${PREFIX}/${LIBDIR}" lib)
if(inc EQUAL -1 OR lib EQUAL -1)
  message(FATAL_ERROR "pkg-config --cflags --libs cpns: '${run_out}' does not point into ${PREFIX}")
endif()
file(WRITE ${PREFIX}/hello.c [[
#include <stdio.h>
#include <string.h>
#include <cpns/cpns.h>
int main(void)
{
    uint8_t EUK[CPNS_KEY_LEN] = {1, 2, 3};
    char fp[CPNS_FINGERPRINT_LEN + 1] = "";
    cpns_fingerprint(EUK, sizeof EUK, fp);
    printf("%s %s\n", fp, cpns_strerror(CPNS_ERR_NOT_FOUND));
    return strlen(fp) == CPNS_FINGERPRINT_LEN ? 0 : 1;
}
]])
run("cc against the installed libcpns" ${CC} -std=c11 -Wall -Werror -o ${PREFIX}/hello
    ${PREFIX}/hello.c ${flags})
set(ENV{LD_LIBRARY_PATH} ${PREFIX}/${LIBDIR})
run("the program linked against the installed libcpns" ${PREFIX}/hello)
if(NOT run_out MATCHES "^[0-9a-f]+ ")
  message(FATAL_ERROR "unexpected output of the installed program: ${run_out}")
endif()
message(STATUS "installed into ${PREFIX}; pkg-config: ${flags}; program said: ${run_out}")
