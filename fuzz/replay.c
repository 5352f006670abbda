/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays a fuzz corpus through a harness without libFuzzer, so the normal
 * test run (CTest, tests/fuzz.cmake) keeps every seed and every past crash as
 * a regression test. Usage: replay_<name> CORPUS_DIR. One cmocka test walks
 * the directory and feeds each regular file to LLVMFuzzerTestOneInput; a
 * harness finding aborts the process, which fails the test.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *corpus_dir;

static void replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    /* an exact-size heap copy, so ASan (when on) sees reads past the input */
    uint8_t *data = malloc(n ? (size_t)n : 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    LLVMFuzzerTestOneInput(data, (size_t)n);
    free(data);
}

static void test_replay_corpus(void **state)
{
    (void)state;
    DIR *dir = opendir(corpus_dir);
    if (!dir)
        fail_msg("cannot open corpus %s", corpus_dir);
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", corpus_dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        replay_file(path);
        files++;
    }
    closedir(dir);
    /* an empty or misnamed corpus would make this test pass for nothing */
    assert_true(files > 0);
    printf("replayed %zu inputs from %s\n", files, corpus_dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    corpus_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
