/* One file over HTTP(S) with libcurl, into a .part file that survives a cut connection.
 *
 * What is refused, and why each check sits where it does:
 *  - a status other than 200/206 (after redirects, at most max_redirects of them): checked when the
 *    final response's headers are complete, before any byte of its body is written;
 *  - an HTML page (Content-Type text/html, or a body starting with '<': none of the catalog's
 *    files, gzip, zip or comma-separated digits, can start that way): a captive portal or a
 *    mirror's "not found" page served with status 200;
 *  - a size other than the pinned one, from Content-Length / Content-Range, before the body; and
 *    any byte beyond it while writing;
 *  - a 206 that does not continue where the .part ends.
 * A server that ignores the Range header answers 200 with the whole file: the .part is emptied and
 * the file starts over. A stalled server is cut off by libcurl's low-speed limit, a dead one by the
 * connect timeout, a redirect loop by the redirect limit, and one that trickles just above the stall
 * limit by the file's time budget (its size at min_bytes_per_second, plus connect and stall time),
 * counted over every try of the file.
 * The .part is opened with O_NOFOLLOW and must be a regular file with one link: in a shared data
 * directory a planted symlink or hard link would otherwise make the download overwrite (truncate,
 * append to) whatever file it points at. */
#include "fetch/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Slower than this for stall_seconds counts as stalled. Low enough for a bad mobile link. */
#define STALL_BYTES_PER_SECOND 1024L

typedef struct request {
    const fetch_transfer *t;
    FILE *out;
    int fd;
    int64_t offset;   /* bytes in the .part when the request was sent (0 after a restart) */
    int64_t received; /* body bytes written from the current response */
    /* the current response */
    long status;
    int html;
    int64_t content_length;            /* -1: not sent */
    int64_t range_start, range_total;  /* -1: not sent (range_total also for "*") */
    int accepted;                      /* the final response passed the header checks */
    int restarted;                     /* the server ignored our Range: started over */
    /* why we cut the transfer ourselves ("" when libcurl's error is the story) */
    char why[320];
    dn_status why_status;
    int range_refused; /* 416 */
    int stopped;       /* the callback asked to stop */
} request;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The whole file's time budget in seconds, 0 for none. */
static double time_budget(const fetch_transfer *t)
{
    const dn_fetch_params *p = t->params;
    int64_t size = t->budget_size >= 0 ? t->budget_size : t->expected_size >= 0 ? t->expected_size : t->max_size;
    if (p->min_bytes_per_second <= 0 || size < 0)
        return 0;
    return (double)size / (double)p->min_bytes_per_second + (double)p->connect_seconds + (double)p->stall_seconds;
}

static void refuse(request *rq, dn_status status, const char *fmt, ...) DN_PRINTF(3, 4);
static void refuse(request *rq, dn_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rq->why, sizeof rq->why, fmt, ap);
    va_end(ap);
    rq->why_status = status;
}

static int64_t parse_int64(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno || end == s || v < 0 ? -1 : (int64_t)v;
}

/* "Name: value" -> value when the name matches (case-insensitive), else NULL. */
static const char *header_value(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    line += n + 1;
    while (*line == ' ' || *line == '\t')
        line++;
    return line;
}

/* Called once the final response's headers are in: may this body be written to the .part? */
static int accept_response(request *rq)
{
    const fetch_transfer *t = rq->t;
    if (rq->status == 416) {
        rq->range_refused = 1;
        refuse(rq, DN_ENET, "HTTP 416: the server has no bytes past the %lld kept from before", (long long)rq->offset);
        return 0;
    }
    if (rq->status != 200 && rq->status != 206) {
        refuse(rq, DN_ENET, "HTTP %ld", rq->status);
        return 0;
    }
    if (rq->html) {
        refuse(rq, DN_EFORMAT, "the server sent an HTML page (Content-Type text/html), not the file");
        return 0;
    }
    int64_t total = -1;
    if (rq->status == 206) {
        if (rq->range_start != rq->offset) {
            refuse(rq, DN_ENET, "the server resumed at byte %lld, not at byte %lld", (long long)rq->range_start,
                   (long long)rq->offset);
            return 0;
        }
        total = rq->range_total;
    } else {
        if (rq->offset > 0) {
            /* Range ignored: the whole file follows. Start the .part over. */
            if (fflush(rq->out) != 0 || ftruncate(rq->fd, 0) != 0) {
                refuse(rq, DN_EIO, "%s: cannot empty it to start over: %s", t->part_path, strerror(errno));
                return 0;
            }
            rq->offset = 0;
            rq->restarted = 1;
        }
        total = rq->content_length;
    }
    if (t->expected_size >= 0 && total >= 0 && total != t->expected_size) {
        refuse(rq, DN_EFORMAT, "the server has %lld bytes, expected %lld: not the published file",
               (long long)total, (long long)t->expected_size);
        return 0;
    }
    if (t->max_size >= 0 && total > t->max_size) {
        refuse(rq, DN_EFORMAT, "the server offers %lld bytes, more than the %lld allowed", (long long)total,
               (long long)t->max_size);
        return 0;
    }
    rq->accepted = 1;
    return 1;
}

static size_t on_header(char *buf, size_t size, size_t n, void *user)
{
    request *rq = user;
    size_t len = size * n;
    char line[512];
    size_t keep = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, buf, keep);
    line[keep] = '\0';
    while (keep > 0 && (line[keep - 1] == '\r' || line[keep - 1] == '\n'))
        line[--keep] = '\0';

    if (strncmp(line, "HTTP/", 5) == 0) { /* a new response (after a redirect, or 100 Continue) */
        const char *sp = strchr(line, ' ');
        rq->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        rq->html = 0;
        rq->content_length = rq->range_start = rq->range_total = -1;
        rq->accepted = 0;
        return len;
    }
    if (keep == 0) { /* end of this response's headers */
        if (rq->status < 200 || (rq->status >= 300 && rq->status < 400))
            return len; /* informational, or a redirect libcurl follows (or refuses: too many) */
        return accept_response(rq) ? len : 0;
    }
    const char *v;
    if ((v = header_value(line, "Content-Type")) != NULL)
        rq->html = strncasecmp(v, "text/html", 9) == 0;
    else if ((v = header_value(line, "Content-Length")) != NULL)
        rq->content_length = parse_int64(v);
    else if ((v = header_value(line, "Content-Range")) != NULL) {
        /* "bytes 100-999/1000" */
        if (strncasecmp(v, "bytes ", 6) == 0) {
            rq->range_start = parse_int64(v + 6);
            const char *slash = strchr(v, '/');
            rq->range_total = slash ? parse_int64(slash + 1) : -1;
        }
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    request *rq = user;
    size_t len = size * n;
    if (!rq->accepted) {
        if (!rq->why[0])
            refuse(rq, DN_ENET, "HTTP %ld", rq->status);
        return 0;
    }
    if (rq->offset + rq->received == 0 && len > 0) {
        size_t i = 0;
        while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
            i++;
        if (i < len && data[i] == '<') {
            refuse(rq, DN_EFORMAT, "the server sent an HTML page, not the file");
            return 0;
        }
    }
    const fetch_transfer *t = rq->t;
    if (t->max_size >= 0 && rq->offset + rq->received + (int64_t)len > t->max_size) {
        refuse(rq, DN_EFORMAT, "the server sent more than the %lld bytes expected", (long long)t->max_size);
        return 0;
    }
    if (fwrite(data, 1, len, rq->out) != len) {
        refuse(rq, DN_EIO, "%s: write failed: %s", t->part_path, strerror(errno));
        return 0;
    }
    rq->received += (int64_t)len;
    return len;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    request *rq = user;
    dn_fetch_status *s = rq->t->report;
    s->event = DN_FETCH_PROGRESS;
    s->url = rq->t->url;
    s->done = rq->offset + (rq->accepted ? (int64_t)dlnow : 0);
    s->total = rq->t->expected_size >= 0       ? rq->t->expected_size
               : rq->accepted && dltotal > 0 ? rq->offset + (int64_t)dltotal
                                              : 0;
    if (fetch_notify(rq->t->params, s)) {
        rq->stopped = 1;
        return 1;
    }
    return 0;
}

static dn_status set_options(CURL *curl, const fetch_transfer *t, char *errbuf)
{
    const dn_fetch_params *p = t->params;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                                      \
    if (rc == CURLE_OK)                                                                                    \
    rc = curl_easy_setopt(curl, opt, val)
    SET(CURLOPT_URL, t->url);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, p->max_redirects);
    SET(CURLOPT_CONNECTTIMEOUT, p->connect_seconds);
    SET(CURLOPT_LOW_SPEED_LIMIT, STALL_BYTES_PER_SECOND);
    SET(CURLOPT_LOW_SPEED_TIME, p->stall_seconds);
    SET(CURLOPT_USERAGENT, "digitnet/" DN_VERSION);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string forms; the bit masks are deprecated */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
#undef SET
    return rc == CURLE_OK ? DN_OK : DN_ENET;
}

typedef struct attempt {
    dn_status status;
    int cut;          /* the connection ended early: resumable */
    int progressed;   /* bytes arrived */
    int range_refused;
} attempt;

static void describe_total(char *buf, size_t size, int64_t have, int64_t total)
{
    if (total > 0)
        snprintf(buf, size, "%lld of %lld bytes", (long long)have, (long long)total);
    else
        snprintf(buf, size, "%lld bytes", (long long)have);
}

static attempt one_request(CURL *curl, const fetch_transfer *t, FILE *out, int fd, int64_t offset, double deadline,
                           fetch_result *res, dn_error *err)
{
    attempt a = {DN_OK, 0, 0, 0};
    request rq = {.t = t, .out = out, .fd = fd, .offset = offset, .status = 0, .content_length = -1,
                  .range_start = -1, .range_total = -1};
    char errbuf[CURL_ERROR_SIZE] = "", range[32];
    snprintf(range, sizeof range, "%lld-", (long long)offset);
    if (set_options(curl, t, errbuf) != DN_OK || curl_easy_setopt(curl, CURLOPT_RANGE, offset > 0 ? range : NULL) ||
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &rq) || curl_easy_setopt(curl, CURLOPT_WRITEDATA, &rq) ||
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &rq)) {
        a.status = dn_fail(err, DN_ENET, "%s: cannot set up the transfer (libcurl)", t->url);
        return a;
    }
    long left_ms = 0; /* 0: no limit for libcurl */
    if (deadline > 0) {
        double left = deadline - now_seconds();
        left_ms = left < 0.001 ? 1 : (long)(left * 1000);
    }
    if (curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, left_ms)) {
        a.status = dn_fail(err, DN_ENET, "%s: cannot set up the transfer (libcurl)", t->url);
        return a;
    }
    dn_fetch_status *s = t->report;
    s->event = DN_FETCH_START;
    s->url = t->url;
    s->done = offset;
    s->total = t->expected_size >= 0 ? t->expected_size : 0;
    if (fetch_notify(t->params, s)) {
        a.status = dn_fail(err, DN_ESTOPPED, "%s: stopped", t->url);
        return a;
    }

    CURLcode rc = curl_easy_perform(curl);
    /* The handle outlives this frame: let it point at none of it. */
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    int flushed = fflush(out) == 0;
    res->http_status = rq.status;
    res->resumed |= offset > 0 && !rq.restarted;
    a.progressed = rq.received > 0;
    int64_t have = rq.offset + rq.received;
    char amount[80];
    int64_t total = t->expected_size >= 0 ? t->expected_size
                    : rq.status == 206        ? rq.range_total
                    : rq.content_length >= 0  ? rq.offset + rq.content_length
                                              : -1;
    describe_total(amount, sizeof amount, have, total);

    if (rq.stopped) {
        a.status = dn_fail(err, DN_ESTOPPED, "%s: stopped after %s", t->url, amount);
    } else if (rq.why[0]) {
        a.range_refused = rq.range_refused;
        a.status = dn_fail(err, rq.why_status, "%s: %s", t->url, rq.why);
    } else if (!flushed) {
        a.status = dn_fail(err, DN_EIO, "%s: write failed: %s", t->part_path, strerror(errno));
    } else if (rc == CURLE_OK) {
        if (!rq.accepted)
            a.status = dn_fail(err, DN_ENET, "%s: HTTP %ld and no file", t->url, rq.status);
        else if (t->expected_size >= 0 && have != t->expected_size) {
            a.cut = 1;
            a.status = dn_fail(err, DN_ENET, "%s: the transfer ended after %s", t->url, amount);
        }
    } else {
        curl_off_t connect_us = 0; /* 0: never connected */
        if (curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us) != CURLE_OK)
            connect_us = 0;
        switch (rc) {
        case CURLE_TOO_MANY_REDIRECTS:
            a.status = dn_fail(err, DN_ENET, "%s: more than %ld redirects: a redirect loop", t->url,
                               t->params->max_redirects);
            break;
        case CURLE_OPERATION_TIMEDOUT:
            if (deadline > 0 && now_seconds() >= deadline - 0.5) {
                /* Also not retried: the next mirror may be faster. The .part is kept. */
                a.status = dn_fail(err, DN_ENET,
                                   "%s: too slow: %s in the %.0f s allowed for this file (under %ld bytes/s on average)",
                                   t->url, amount, time_budget(t), t->params->min_bytes_per_second);
            } else if (connect_us == 0)
                a.status = dn_fail(err, DN_ENET, "%s: could not connect within %ld s", t->url,
                                   t->params->connect_seconds);
            else {
                /* Not retried here: a server that stalled once tends to again, and each try costs
                 * the whole stall time. The .part is kept for the next mirror or run. */
                a.status = dn_fail(err, DN_ENET, "%s: the server stalled (under %ld bytes/s for %ld s) after %s",
                                   t->url, STALL_BYTES_PER_SECOND, t->params->stall_seconds, amount);
            }
            break;
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2_STREAM:
            a.cut = 1;
            a.status = dn_fail(err, DN_ENET, "%s: the connection was cut after %s", t->url, amount);
            break;
        case CURLE_COULDNT_RESOLVE_HOST:
            a.status = dn_fail(err, DN_ENET, "%s: cannot resolve the host name (offline?)", t->url);
            break;
        default:
            a.status = dn_fail(err, DN_ENET, "%s: %s", t->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
            break;
        }
    }
    return a;
}

dn_status fetch_download(const fetch_transfer *t, fetch_result *res, dn_error *err)
{
    memset(res, 0, sizeof *res);
    int fd = open(t->part_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0 && errno == ELOOP)
        return dn_fail(err, DN_EIO, "%s: is a symbolic link; refusing to write through it", t->part_path);
    if (fd < 0)
        return dn_fail(err, DN_EIO, "%s: cannot create: %s", t->part_path, strerror(errno));
    struct stat first;
    if (fstat(fd, &first) != 0 || !S_ISREG(first.st_mode) || first.st_nlink != 1) {
        close(fd);
        return dn_fail(err, DN_EIO, "%s: not a regular file of its own (a link or a device?); refusing to write to it",
                       t->part_path);
    }
    /* Two downloads appending to one .part would interleave their bytes. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? dn_fail(err, DN_EIO, "%s: another download of this file is running", t->part_path)
                                : dn_fail(err, DN_EIO, "%s: cannot lock: %s", t->part_path, strerror(e));
    }
    FILE *out = fdopen(fd, "ab");
    if (!out) {
        int e = errno;
        close(fd);
        return dn_fail(err, DN_EIO, "%s: %s", t->part_path, strerror(e));
    }
    CURL *curl = curl_easy_init();
    dn_status st = curl ? DN_OK : dn_fail(err, DN_ENOMEM, "%s: cannot start libcurl", t->url);
    int tries = 0, range_restarts = 0;
    double budget = time_budget(t), deadline = budget > 0 ? now_seconds() + budget : 0;
    while (st == DN_OK) {
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            st = dn_fail(err, DN_EIO, "%s: %s", t->part_path, strerror(errno));
            break;
        }
        int64_t offset = (int64_t)sb.st_size;
        if (t->expected_size >= 0 && offset > t->expected_size) { /* not from this file: start over */
            if (ftruncate(fd, 0) != 0) {
                st = dn_fail(err, DN_EIO, "%s: cannot empty it: %s", t->part_path, strerror(errno));
                break;
            }
            offset = 0;
        }
        if (t->expected_size >= 0 && offset == t->expected_size) {
            res->resumed = 1; /* complete from an earlier run; the caller's checksum decides */
            break;
        }
        attempt a = one_request(curl, t, out, fd, offset, deadline, res, err);
        tries++;
        st = a.status;
        if (st == DN_OK || st == DN_ESTOPPED)
            break;
        int again = 0;
        if (a.range_refused && range_restarts++ == 0 && ftruncate(fd, 0) == 0)
            again = 1; /* what we kept is not a prefix of this file: once more from the start */
        else if (a.cut && a.progressed && tries < t->params->resume_tries)
            again = 1;
        if (!again)
            break;
        dn_fetch_status *s = t->report;
        s->event = DN_FETCH_FAILED;
        s->url = t->url;
        s->message = err ? err->msg : "";
        s->retrying = 1;
        if (fetch_notify(t->params, s)) {
            st = dn_fail(err, DN_ESTOPPED, "%s: stopped", t->url);
            break;
        }
        st = DN_OK;
    }
    if (st == DN_OK && fsync(fd) != 0)
        st = dn_fail(err, DN_EIO, "%s: cannot sync: %s", t->part_path, strerror(errno));
    struct stat sb;
    if (st != DN_OK && fstat(fd, &sb) == 0 && sb.st_size == 0)
        unlink(t->part_path); /* nothing to resume from: leave no empty file behind */
    if (fclose(out) != 0 && st == DN_OK) /* also releases the lock */
        st = dn_fail(err, DN_EIO, "%s: write failed: %s", t->part_path, strerror(errno));
    curl_easy_cleanup(curl);
    return st;
}
