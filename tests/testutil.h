/* Shared helpers for the cmocka suites. Tests run from the project root. */
#ifndef DN_TESTUTIL_H
#define DN_TESTUTIL_H

#include <math.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "digitnet.h"

/* This cmocka (1.1.x) has no assert_double_equal. A NaN never passes, since no comparison with it
 * is true. */
#define assert_near(actual, expected, tolerance)                                                 \
    do {                                                                                          \
        double actual_ = (actual), expected_ = (expected);                                        \
        if (!(fabs(actual_ - expected_) <= (tolerance)))                                          \
            fail_msg("%s = %.17g, expected %.17g (tolerance %g)", #actual, actual_, expected_,   \
                     (double)(tolerance));                                                        \
    } while (0)

/* Where the real data lives, relative to the project root. */
#define DN_TEST_DATA "../shared/data"

/* A per-process scratch directory under /tmp, created on first use. */
static inline const char *dn_test_dir(void)
{
    static char dir[128];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/digitnet-test-%d", (int)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* Writes len bytes to dn_test_dir()/name and returns the path (one of 8 rotating static slots). */
static inline const char *dn_test_write_file(const char *name, const void *bytes, size_t len)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ & 7];
    snprintf(path, sizeof paths[0], "%s/%s", dn_test_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    if (len && fwrite(bytes, 1, len, f) != len) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    return path;
}

/* Ends a suite: removes dn_test_dir() when every test passed (the files stay to look at when one
 * failed) and returns the number of failures, for main to return. */
static inline int dn_test_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline int dn_test_finish(int failed)
{
    if (!failed)
        nftw(dn_test_dir(), dn_test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed;
}

#endif
