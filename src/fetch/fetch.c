/* dn_fetch: brings a named data set to root/NAME/, trying the mirrors in order, and moves each file
 * into place only once it is verified. See include/digitnet.h for the contract. */
#include "fetch/fetch.h"

#include <curl/curl.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 8
#define MAX_MIRRORS 64

dn_fetch_params dn_fetch_default_params(void)
{
    dn_fetch_params p = {0};
    p.connect_seconds = 20;
    p.stall_seconds = 30;
    p.max_redirects = 5;
    p.resume_tries = 3;
    p.min_bytes_per_second = 4096;
    return p;
}

int fetch_notify(const dn_fetch_params *p, dn_fetch_status *s)
{
    return p && p->on_status ? p->on_status(p->user, s) : 0;
}

/* mkdir -p */
static dn_status make_dirs(const char *dir, dn_error *err)
{
    char path[FETCH_PATH];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return dn_fail(err, DN_EARG, "%.200s: bad directory name", dir);
    memcpy(path, dir, n + 1);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return dn_fail(err, DN_EIO, "%s: cannot create directory: %s", path, strerror(errno));
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dn_fail(err, DN_EIO, "%s: not a directory", dir);
    return DN_OK;
}

static int is_http_url(const char *url)
{
    size_t skip = strncasecmp(url, "http://", 7) == 0 ? 7 : strncasecmp(url, "https://", 8) == 0 ? 8 : 0;
    return skip && url[skip] != '\0' && url[skip] != '/';
}

/* buf = base/name (one slash between them) */
static dn_status join_url(char *buf, size_t size, const char *base, const char *name, dn_error *err)
{
    size_t n = strlen(base);
    int w = snprintf(buf, size, "%s%s%s", base, n && base[n - 1] == '/' ? "" : "/", name);
    if (w < 0 || (size_t)w >= size)
        return dn_fail(err, DN_EARG, "%.200s...: URL too long", base);
    return DN_OK;
}

typedef struct job {
    const fetch_set *set;
    const dn_fetch_params *params;
    char dir[FETCH_PATH];
    int wanted[MAX_FILES]; /* files still to fetch */
    dn_fetch_status report;
} job;

static int n_wanted(const job *jb)
{
    int n = 0;
    for (int i = 0; i < jb->set->n_files; i++)
        n += jb->wanted[i];
    return n;
}

/* 1: path holds the verified file; 0: it does not (absent, or not the published bytes). */
static int verified_in_place(const fetch_file *f, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || (int64_t)st.st_size != f->size)
        return 0;
    fetch_digest d;
    return fetch_hash_file(path, &d, NULL) == DN_OK && fetch_check_digest(f, &d, path, NULL) == DN_OK;
}

static int announce(job *jb, dn_fetch_event event, const char *file, const char *path, int64_t size)
{
    dn_fetch_status *s = &jb->report;
    s->event = event;
    s->file = file;
    s->path = path;
    s->url = NULL;
    s->message = NULL;
    s->retrying = 0;
    s->done = s->total = size;
    return fetch_notify(jb->params, s);
}

/* One file from one mirror, straight to dir/name. */
static dn_status fetch_file_from(job *jb, const char *base, int index, fetch_result *res, dn_error *err)
{
    const fetch_file *f = &jb->set->files[index];
    char url[FETCH_PATH], part[FETCH_PATH], final[FETCH_PATH];
    dn_status st = join_url(url, sizeof url, base, f->name, err);
    if (st != DN_OK)
        return st;
    if (snprintf(part, sizeof part, "%s/%s.part", jb->dir, f->name) >= (int)sizeof part ||
        snprintf(final, sizeof final, "%s/%s", jb->dir, f->name) >= (int)sizeof final)
        return dn_fail(err, DN_EARG, "%s: path too long", jb->dir);
    jb->report.file = f->name;
    jb->report.path = NULL;
    fetch_transfer t = {url, part, f->size, f->size, -1, jb->params, &jb->report};
    for (int from_scratch = 0; from_scratch < 2; from_scratch++) {
        st = fetch_download(&t, res, err);
        if (st != DN_OK)
            return st;
        fetch_digest d;
        st = fetch_hash_file(part, &d, err);
        if (st == DN_OK)
            st = fetch_check_digest(f, &d, url, err);
        if (st == DN_OK) {
            if (rename(part, final) != 0)
                return dn_fail(err, DN_EIO, "%s: cannot rename into place: %s", final, strerror(errno));
            return announce(jb, DN_FETCH_VERIFIED, f->name, final, f->size)
                       ? dn_fail(err, DN_ESTOPPED, "stopped")
                       : DN_OK;
        }
        if (unlink(part) != 0 && errno != ENOENT)
            return dn_fail(err, DN_EIO, "%s: cannot remove: %s", part, strerror(errno));
        if (!res->resumed)
            break; /* a fresh copy that does not verify: this mirror's file is bad */
        /* What was kept from an earlier transfer may be what is wrong: once more from the start. */
        jb->report.event = DN_FETCH_FAILED;
        jb->report.url = url;
        jb->report.message = err->msg;
        jb->report.retrying = 1;
        if (fetch_notify(jb->params, &jb->report))
            return dn_fail(err, DN_ESTOPPED, "stopped");
    }
    return st;
}

/* The set's zip from one mirror, unpacked into dir. */
static dn_status fetch_archive_from(job *jb, const char *base, fetch_result *res, dn_error *err)
{
    const fetch_set *set = jb->set;
    char url[FETCH_PATH], part[FETCH_PATH];
    dn_status st = join_url(url, sizeof url, base, set->archive, err);
    if (st != DN_OK)
        return st;
    if (snprintf(part, sizeof part, "%s/%s.part", jb->dir, set->archive) >= (int)sizeof part)
        return dn_fail(err, DN_EARG, "%s: path too long", jb->dir);
    jb->report.file = set->archive;
    jb->report.path = NULL;
    /* The zip's size is not known; it is smaller than its members, so their sum sets its time budget. */
    int64_t members = 0;
    for (int i = 0; i < set->n_files; i++)
        members += set->files[i].size;
    fetch_transfer t = {url, part, -1, set->archive_max_size, members, jb->params, &jb->report};
    for (int from_scratch = 0; from_scratch < 2; from_scratch++) {
        st = fetch_download(&t, res, err);
        if (st != DN_OK)
            return st;
        st = fetch_unpack_zip(set, part, jb->dir, jb->wanted, err);
        /* Unpacked or useless: either way the archive itself is not kept. */
        if (unlink(part) != 0 && errno != ENOENT && st == DN_OK)
            st = dn_fail(err, DN_EIO, "%s: cannot remove: %s", part, strerror(errno));
        if (st == DN_OK || !res->resumed)
            break;
        jb->report.event = DN_FETCH_FAILED;
        jb->report.url = url;
        jb->report.message = err->msg;
        jb->report.retrying = 1;
        if (fetch_notify(jb->params, &jb->report))
            return dn_fail(err, DN_ESTOPPED, "stopped");
    }
    if (st != DN_OK) {
        /* The message names the .part path; say where it came from instead. */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        const char *detail = strncmp(why, part, strlen(part)) == 0 ? why + strlen(part) : why;
        return dn_fail(err, st, "%s%s%s", url, detail[0] == ':' ? "" : ": ", detail);
    }
    for (int i = 0; i < set->n_files; i++) {
        if (!jb->wanted[i])
            continue;
        char final[FETCH_PATH + 64]; /* dir + "/" + a catalog file name (short) */
        snprintf(final, sizeof final, "%s/%s", jb->dir, set->files[i].name);
        jb->wanted[i] = 0;
        if (announce(jb, DN_FETCH_VERIFIED, set->files[i].name, final, set->files[i].size))
            return dn_fail(err, DN_ESTOPPED, "stopped");
    }
    return DN_OK;
}

static dn_status fetch_run(const char *name, const char *root, const dn_fetch_params *params, dn_error *err);

/* Tells the callback about a failure dn_fetch goes on after: what it stops on is its own status. */
static int report_failure(job *jb, const char *message, int retrying)
{
    jb->report.event = DN_FETCH_FAILED;
    jb->report.path = NULL;
    jb->report.message = message;
    jb->report.retrying = retrying;
    return fetch_notify(jb->params, &jb->report);
}

/* Everything still wanted, from one mirror. Every file it can give is taken, so that the next
 * mirror is asked only for the rest; the first failure is returned, the others reported. */
static dn_status fetch_from_mirror(job *jb, const fetch_mirror *m, int is_last, dn_error *err)
{
    fetch_result res = {0};
    dn_status st;
    if (m->layout != LAYOUT_FILES && jb->set->archive) {
        st = fetch_archive_from(jb, m->base, &res, err);
        /* A mirror of loose files answers 404 (or 403, S3's way) for an archive it does not have. */
        if (st == DN_OK || m->layout == LAYOUT_ARCHIVE || !(res.http_status >= 400 && res.http_status < 500)) {
            if (st != DN_OK && st != DN_ESTOPPED && !is_last && report_failure(jb, err->msg, 2))
                return dn_fail(err, DN_ESTOPPED, "stopped");
            return st;
        }
    }
    dn_status first = DN_OK;
    dn_error file_err = {0};
    for (int i = 0; i < jb->set->n_files; i++) {
        if (!jb->wanted[i])
            continue;
        dn_error *e = first == DN_OK ? err : &file_err;
        st = fetch_file_from(jb, m->base, i, &res, e);
        if (st == DN_ESTOPPED)
            return dn_fail(err, DN_ESTOPPED, "stopped");
        if (st == DN_OK) {
            jb->wanted[i] = 0;
            continue;
        }
        if (first == DN_OK)
            first = st;
        if ((e != err || !is_last) && report_failure(jb, e->msg, is_last ? 0 : 2))
            return dn_fail(err, DN_ESTOPPED, "stopped");
    }
    return first;
}

/* libcurl asks for curl_global_init once per process, and its cleanup only when nothing uses libcurl
 * any more. dn_fetch once called both on every call, resetting libcurl (and OpenSSL) under any other
 * user in the process. Now the first download initialises libcurl once, thread-safely, and nothing
 * tears it down before the process exits. A program that uses libcurl itself calls curl_global_init
 * first, as libcurl asks; this call then only counts one more user. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void init_curl(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

dn_status dn_fetch(const char *name, const char *root, const dn_fetch_params *params, dn_error *caller_err)
{
    /* Messages are needed for the callback even when the caller passes no dn_error. */
    dn_error local = {0};
    dn_error *err = &local;
    dn_status st = fetch_run(name, root, params, err);
    if (caller_err && st != DN_OK)
        *caller_err = local;
    return st;
}

static dn_status fetch_run(const char *name, const char *root, const dn_fetch_params *params, dn_error *err)
{
    const fetch_set *set = fetch_find_set(name);
    if (!set)
        return dn_fail(err, DN_EARG, "cannot download '%s': digitnet can download optdigits, mnist and fashion-mnist",
                       name ? name : "(null)");
    dn_fetch_params p = params ? *params : dn_fetch_default_params();
    if (p.connect_seconds <= 0 || p.stall_seconds <= 0 || p.max_redirects < 0 || p.resume_tries < 1 || p.min_bytes_per_second < 0 ||
        p.n_mirrors < 0 || p.n_mirrors > MAX_MIRRORS || (p.n_mirrors > 0 && !p.mirrors))
        return dn_fail(err, DN_EARG, "dn_fetch: bad parameters (timeouts and tries must be positive, at most %d mirrors)",
                       MAX_MIRRORS);
    for (int i = 0; i < p.n_mirrors; i++)
        if (!p.mirrors[i] || !is_http_url(p.mirrors[i]))
            return dn_fail(err, DN_EARG, "mirror '%s' is not an http:// or https:// URL",
                           p.mirrors[i] ? p.mirrors[i] : "(null)");
    if (set->n_files > MAX_FILES)
        return dn_fail(err, DN_EARG, "%s: too many files", name);

    job *jb = calloc(1, sizeof *jb);
    if (!jb)
        return dn_fail(err, DN_ENOMEM, "out of memory");
    jb->set = set;
    jb->params = &p;
    jb->report.dataset = set->name;
    dn_status st = DN_OK;
    char root_buf[FETCH_PATH];
    if (!root) {
        st = dn_data_default_dir(root_buf, sizeof root_buf, err);
        root = root_buf;
    }
    if (st == DN_OK && snprintf(jb->dir, sizeof jb->dir, "%s/%s", root, set->name) >= (int)sizeof jb->dir)
        st = dn_fail(err, DN_EARG, "%.200s: path too long", root);
    if (st == DN_OK)
        st = make_dirs(jb->dir, err);
    for (int i = 0; st == DN_OK && i < set->n_files; i++) {
        char path[FETCH_PATH + 64];
        snprintf(path, sizeof path, "%s/%s", jb->dir, set->files[i].name);
        jb->wanted[i] = !verified_in_place(&set->files[i], path);
        if (!jb->wanted[i] && announce(jb, DN_FETCH_PRESENT, set->files[i].name, path, set->files[i].size))
            st = dn_fail(err, DN_ESTOPPED, "stopped");
    }
    if (st != DN_OK || n_wanted(jb) == 0) {
        free(jb);
        return st;
    }

    if (pthread_once(&curl_once, init_curl) != 0 || curl_init_result != CURLE_OK) {
        free(jb);
        return dn_fail(err, DN_ENET, "cannot initialise libcurl");
    }
    fetch_mirror given[MAX_MIRRORS];
    const fetch_mirror *mirrors = set->mirrors;
    int n_mirrors = set->n_mirrors;
    if (p.n_mirrors > 0) {
        n_mirrors = p.n_mirrors;
        for (int i = 0; i < n_mirrors; i++)
            given[i] = (fetch_mirror){p.mirrors[i], set->archive ? LAYOUT_AUTO : LAYOUT_FILES};
        mirrors = given;
    }
    for (int m = 0; m < n_mirrors; m++) {
        st = fetch_from_mirror(jb, &mirrors[m], m + 1 == n_mirrors, err);
        if (st == DN_OK || st == DN_ESTOPPED)
            break;
    }
    if (st != DN_OK && st != DN_ESTOPPED) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        if (n_mirrors > 1)
            dn_fail(err, st, "cannot download %s: no mirror worked (%d tried); the last: %s", set->name, n_mirrors, why);
        else
            dn_fail(err, st, "cannot download %s: %s", set->name, why);
    }
    free(jb);
    return st;
}
