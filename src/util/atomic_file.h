/* Files written whole or not at all: data goes to a temporary name in the same directory, is
 * flushed to disk, and is renamed over the final name only when complete. */
#ifndef DN_ATOMIC_FILE_H
#define DN_ATOMIC_FILE_H

#include "internal.h"

#include <stdio.h>

typedef struct dn_atomic_file {
    FILE *file;           /* write here */
    char path[1024];      /* final name */
    char tmp_path[1100];  /* temporary name */
} dn_atomic_file;

/* Creates the temporary file next to path. */
dn_status dn_atomic_open(dn_atomic_file *af, const char *path, dn_error *err);
/* Flushes, syncs, closes and renames into place. On failure removes the temporary file. */
dn_status dn_atomic_commit(dn_atomic_file *af, dn_error *err);
/* Closes and removes the temporary file; records "path: why" in err and returns DN_EIO. */
dn_status dn_atomic_abort(dn_atomic_file *af, dn_error *err, const char *why);

/* dn_atomic_abort after a failed write, saying why from errno ("write failed: No space left on device"). */
dn_status dn_atomic_write_failed(dn_atomic_file *af, dn_error *err);

/* Writes len bytes to path atomically in one call. */
dn_status dn_atomic_write(const char *path, const void *bytes, size_t len, dn_error *err);

#endif
