# SPDX-License-Identifier: Apache-2.0
# `make install` checked end to end (DESIGN.md section 6): installs this
# build into ${CMAKE_BINARY_DIR}/install-test, then compiles, links and runs
# a small program against it with nothing but `pkg-config --cflags --libs cpns`,
# and one that opens a SQLite store with `pkg-config ... cpns-store`. On the
# installed files it also checks the library split: libcpns (a PNE-only
# program) needs neither SQLite nor libpq, and the test hooks
# (cpns/testing.h) are not installed.
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
          include/cpns/server.h include/cpns/store.h include/cpns/store_db.h
          ${LIBDIR}/libcpns.a ${LIBDIR}/libcpns.so ${LIBDIR}/pkgconfig/cpns.pc
          ${LIBDIR}/libcpns-store.a ${LIBDIR}/libcpns-store.so ${LIBDIR}/pkgconfig/cpns-store.pc)
  if(NOT EXISTS ${PREFIX}/${f})
    message(FATAL_ERROR "make install did not install ${f} under ${PREFIX}")
  endif()
endforeach()
# The test hooks stay in the source tree, and no installed header mentions them.
if(EXISTS ${PREFIX}/include/cpns/testing.h)
  message(FATAL_ERROR "make install installed include/cpns/testing.h (the test hooks)")
endif()
file(GLOB installed_headers ${PREFIX}/include/cpns/*.h)
foreach(h ${installed_headers})
  file(READ ${h} text)
  if(text MATCHES "CPNS_TESTING|testing\\.h")
    message(FATAL_ERROR "the installed ${h} mentions CPNS_TESTING or testing.h")
  endif()
endforeach()

# libcpns needs neither SQLite nor libpq: not in its static link line, not
# in the NEEDED entries of libcpns.so (those are libcpns-store's).
function(no_db_dependency what text)
  if(text MATCHES "sqlite|libpq|-lpq")
    message(FATAL_ERROR "${what} names SQLite or libpq:\n${text}")
  endif()
endfunction()
set(ENV{PKG_CONFIG_PATH} ${PREFIX}/${LIBDIR}/pkgconfig)
run("pkg-config --libs --static cpns" pkg-config --libs --static cpns)
no_db_dependency("pkg-config --libs --static cpns" "${run_out}")
run("readelf -d libcpns.so" readelf -d ${PREFIX}/${LIBDIR}/libcpns.so)
string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*" needed "${run_out}")
if(NOT needed MATCHES "libcrypto")
  message(FATAL_ERROR "readelf -d libcpns.so: no NEEDED entry found (libcrypto expected):\n${run_out}")
endif()
no_db_dependency("the NEEDED entries of the installed libcpns.so" "${needed}")
run("pkg-config --libs --static cpns-store" pkg-config --libs --static cpns-store)
if(NOT run_out MATCHES "-lcpns-store" OR NOT run_out MATCHES "-lsqlite3" OR NOT run_out MATCHES "-lpq"
   OR NOT run_out MATCHES "-lcpns( |$)")
  message(FATAL_ERROR "pkg-config --libs --static cpns-store: '${run_out}' lacks libcpns-store, libcpns, sqlite3 or libpq")
endif()

# The program uses the library's crypto, so linking it needs libcrypto behind libcpns.
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
set(hello_said "${run_out}")
# What a PNE-only program loads: libcpns and its dependencies, no SQLite, no libpq.
run("ldd hello" ldd ${PREFIX}/hello)
if(NOT run_out MATCHES "libcpns\\.so\\.0 => ${PREFIX}/")
  message(FATAL_ERROR "ldd: the program does not load the installed libcpns.so:\n${run_out}")
endif()
no_db_dependency("ldd of a program linked with pkg-config cpns" "${run_out}")

# A program of the server side: opens a SQLite store (libcpns-store), writes
# an SG, commits, closes, opens it again and reads the SG back through load().
run("pkg-config --cflags --libs cpns-store" pkg-config --cflags --libs cpns-store)
separate_arguments(store_flags UNIX_COMMAND "${run_out}")
file(REMOVE_RECURSE ${PREFIX}/store-db)
file(MAKE_DIRECTORY ${PREFIX}/store-db)
file(WRITE ${PREFIX}/store.c [[
#include <stdio.h>
#include <string.h>
#include <cpns/store_db.h>
static int on_pne(void *arg, const cpns_store_pne *p) { return 0; }
static int on_member(void *arg, const cpns_store_member *m) { return 0; }
static int on_nonce(void *arg, const cpns_store_nonce *n) { return 0; }
static int on_sg(void *arg, const cpns_store_sg *sg)
{
    *(cpns_store_sg *)arg = *sg;
    return 0;
}
int main(int argc, char **argv)
{
    uint8_t mk[CPNS_KEY_LEN] = {7};
    char err[256];
    cpns_store *st;
    int rv = cpns_store_sqlite_open(&st, argv[1], mk, err, sizeof err);
    if (rv) {
        printf("open: %s (%s)\n", cpns_strerror(rv), err);
        return 1;
    }
    cpns_store_sg sg = {.SGID = "sg1", .KeyVersion = 3, .GK = {42}};
    rv = st->ops->put_sg(st, &sg);
    if (rv == 0)
        rv = st->ops->commit(st);
    cpns_store_free(st);
    if (rv == 0)
        rv = cpns_store_sqlite_open(&st, argv[1], mk, err, sizeof err);
    if (rv) {
        printf("write or reopen: %s (%s)\n", cpns_strerror(rv), err);
        return 1;
    }
    cpns_store_sg got = {0};
    cpns_store_loader l = {on_pne, on_sg, on_member, on_nonce};
    rv = st->ops->load(st, &l, &got);
    cpns_store_free(st);
    printf("load %d: %s %u %d\n", rv, got.SGID, (unsigned)got.KeyVersion, got.GK[0]);
    return rv == 0 && strcmp(got.SGID, "sg1") == 0 && got.KeyVersion == 3 && got.GK[0] == 42 ? 0 : 1;
}
]])
run("cc against the installed libcpns-store" ${CC} -std=c11 -Wall -Werror
    -Wno-unused-parameter -o ${PREFIX}/store ${PREFIX}/store.c ${store_flags})
run("the program linked against the installed libcpns-store" ${PREFIX}/store
    ${PREFIX}/store-db/cpns.db)
if(NOT run_out STREQUAL "load 0: sg1 3 42")
  message(FATAL_ERROR "unexpected output of the store program: ${run_out}")
endif()
run("ldd store" ldd ${PREFIX}/store)
if(NOT run_out MATCHES "libcpns-store\\.so\\.0 => ${PREFIX}/" OR NOT run_out MATCHES "libsqlite3")
  message(FATAL_ERROR "ldd: the store program does not load the installed libcpns-store.so and SQLite:\n${run_out}")
endif()
message(STATUS "installed into ${PREFIX}; pkg-config: ${flags}; programs said: ${hello_said}; load 0")
