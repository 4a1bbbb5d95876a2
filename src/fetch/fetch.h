/* Internal pieces of dn_fetch: the catalog of downloadable sets, one HTTP transfer into a .part file,
 * checksums, and unpacking UCI's zip archive. */
#ifndef DN_FETCH_H
#define DN_FETCH_H

#include "internal.h"

#include <stdint.h>

#define FETCH_PATH 4096 /* longest path or URL we build */

/* One file of a data set as it must end up on disk. */
typedef struct fetch_file {
    const char *name;   /* name on disk and on the mirrors */
    int64_t size;       /* bytes */
    const char *sha256; /* lower-case hex, pinned */
    const char *md5;    /* lower-case hex as published with the data set, or NULL */
} fetch_file;

typedef enum fetch_layout {
    LAYOUT_FILES,   /* each file at BASE/<file name> */
    LAYOUT_ARCHIVE, /* one zip at BASE/<archive name> holding the files */
    LAYOUT_AUTO     /* the archive, and when the mirror answers 4xx for it, the files */
} fetch_layout;

typedef struct fetch_mirror {
    const char *base; /* URL of the folder, with or without a trailing slash */
    fetch_layout layout;
} fetch_mirror;

typedef struct fetch_set {
    const char *name;
    const char *file_list; /* the files, as text for messages */
    const fetch_file *files;
    int n_files;
    const char *archive;      /* zip name for LAYOUT_ARCHIVE / LAYOUT_AUTO, or NULL */
    int64_t archive_max_size; /* the zip's size is not published: refuse anything larger */
    const fetch_mirror *mirrors;
    int n_mirrors;
} fetch_set;

/* The catalog entry for name, or NULL. */
const fetch_set *fetch_find_set(const char *name);

/* SHA-256 and MD5 (lower-case hex) and size of a whole file. DN_EIO when it cannot be read. */
typedef struct fetch_digest {
    char sha256[65];
    char md5[33];
    int64_t size;
} fetch_digest;
dn_status fetch_hash_file(const char *path, fetch_digest *d, dn_error *err);

/* Streaming form, for data that never sits in one file of its own (zip members). */
typedef struct fetch_hasher fetch_hasher;
fetch_hasher *fetch_hasher_new(void);
int fetch_hasher_update(fetch_hasher *h, const void *bytes, size_t len); /* 0 on success */
int fetch_hasher_final(fetch_hasher *h, fetch_digest *d);                /* 0 on success */
void fetch_hasher_free(fetch_hasher *h);

/* Checks d against the pinned values of f. On a mismatch records "<what>: <which> is ..., expected
 * ..." in err and returns DN_EFORMAT. */
dn_status fetch_check_digest(const fetch_file *f, const fetch_digest *d, const char *what, dn_error *err);

/* What one file's download needs besides the URL. */
typedef struct fetch_transfer {
    const char *url;
    const char *part_path;   /* where the bytes go (appended to when resuming) */
    int64_t expected_size;   /* -1 when not known */
    int64_t max_size;        /* refuse more than this (expected_size when known) */
    int64_t budget_size;     /* the time budget is for this many bytes (-1: expected_size, else max_size) */
    const dn_fetch_params *params;
    dn_fetch_status *report; /* dataset and file filled in by the caller; the rest here */
} fetch_transfer;

/* Outcome details the caller acts on. */
typedef struct fetch_result {
    long http_status;    /* of the final response, 0 when there was none */
    int resumed;         /* the file on disk was continued from an earlier, interrupted transfer */
} fetch_result;

/* Downloads url into part_path, resuming from what part_path already holds, retrying a cut
 * transfer that made progress up to params->resume_tries times. DN_OK when part_path holds the
 * whole response body (and expected_size bytes when that is known). The .part file is kept on
 * network errors (to resume later) and left as it was on content errors (HTML page, wrong size).
 * Messages: "<url>: <reason>". */
dn_status fetch_download(const fetch_transfer *t, fetch_result *res, dn_error *err);

/* Unpacks the set's files from the zip at zip_path into dir, each checked against its pinned size
 * and SHA-256 before any of them is renamed into place. `wanted[i]` says which files to write. */
dn_status fetch_unpack_zip(const fetch_set *set, const char *zip_path, const char *dir, const int *wanted,
                           dn_error *err);

/* Calls the status callback, if any; returns its answer (non-zero: stop). */
int fetch_notify(const dn_fetch_params *p, dn_fetch_status *s);

#endif
