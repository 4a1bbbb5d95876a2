/* digitnet serve: the drawing page and a small JSON API on libmicrohttpd.
 *
 *   GET  /               the drawing page (web/index.html, compiled into the binary)
 *   GET  /api/health     {"status":"ok", ...}
 *   POST /api/predict    body: an image file (PNG, JPEG, BMP, PGM/PPM) or JSON {"pixels": [784 numbers
 *                        0..255]} (a 28x28 image, either polarity) -> {"digit", "probability",
 *                        "probabilities", "preprocessed", "shape"}; {"digit": null, "message": "no
 *                        digit found"} for a blank image
 * Bodies over 1 MB get 413, bad bodies 400 with {"error": "..."}, unknown paths 404, other methods
 * on known paths 405, a model whose output is not a number 500. Requests run on a pool of threads
 * (--threads, default 16), all predicting with the one loaded network at once: inference only reads
 * it (dn_net_predict). SIGINT and SIGTERM stop the server cleanly, closing open connections at once.
 * Connection limits and request deadlines (--max-connections, --max-per-client, --request-timeout)
 * are in serve_guard.c; images claiming more than --max-pixels are refused with 413 before decoding. */
#include "cli.h"
#include "serve_guard.h"

#include <microhttpd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MAX_BODY (1024 * 1024)
#define MAX_IMAGE_PIXELS (4096u * 4096u) /* default --max-pixels: the size an image may claim */
#define MAX_CONNECTIONS 2000             /* default --max-connections */
#define MAX_PER_CLIENT 256               /* default --max-per-client */
#define REQUEST_SECONDS 15               /* default --request-timeout */
#define POOL_THREADS 16 /* more than the heavy requests likely at once, so that cheap ones find a free thread */
#define PIXELS_SIDE 28 /* the JSON body is a 28x28 drawing */

/* web/index.html, generated into $(BUILD)/gen/web_index.c by the Makefile (xxd -i). */
extern unsigned char web_index_html[];
extern unsigned int web_index_html_len;

typedef struct server {
    dn_net *net;
    dn_shape in;
    const char *model_path;
    size_t max_pixels;
    dn_qnet *qnet;        /* --int8: answers come from the quantised network (read-only) */
} server;

/* One request's body, gathered across calls of the access handler. */
typedef struct request {
    char *body;
    size_t len;
    int too_large;
} request;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *text, size_t len,
                                 enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Sends obj as JSON and frees it. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text)
        return MHD_NO;
    return send_text(c, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "error", msg);
    return send_json(c, status, o);
}

/* {"pixels": [784 numbers 0..255]} -> a 28x28 grey image. Returns 0 or fills msg. */
static int parse_pixels(const char *body, size_t len, dn_image *img, char *msg, size_t size)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    while (root && end < body + len && *end && strchr(" \t\r\n", *end))
        end++;
    if (root && end != body + len) {
        cJSON_Delete(root);
        snprintf(msg, size, "malformed JSON: something follows the object at byte %zu", (size_t)(end - body));
        return -1;
    }
    if (!root) {
        snprintf(msg, size, "malformed JSON");
        return -1;
    }
    const cJSON *pixels = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "pixels") : NULL;
    int n = cJSON_IsArray(pixels) ? cJSON_GetArraySize(pixels) : -1, bad = 0;
    if (n != PIXELS_SIDE * PIXELS_SIDE) {
        if (n < 0)
            snprintf(msg, size, "expected an object {\"pixels\": [%d numbers 0..255]}", PIXELS_SIDE * PIXELS_SIDE);
        else
            snprintf(msg, size, "\"pixels\" holds %d values; expected %d (28x28)", n, PIXELS_SIDE * PIXELS_SIDE);
        cJSON_Delete(root);
        return -1;
    }
    dn_error err = {0};
    if (dn_image_new(PIXELS_SIDE, PIXELS_SIDE, 0.0f, img, &err) != DN_OK) {
        snprintf(msg, size, "%s", err.msg);
        cJSON_Delete(root);
        return -1;
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, pixels)
    {
        double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (!(x >= 0 && x <= 255)) {
            snprintf(msg, size, "pixel %d is not a number 0..255", i);
            bad = 1;
            break;
        }
        img->pixels[i++] = (float)(x / 255.0);
    }
    cJSON_Delete(root);
    if (bad)
        dn_image_free(img);
    return bad ? -1 : 0;
}

static enum MHD_Result predict(server *s, struct MHD_Connection *c, const request *req)
{
    if (req->len == 0)
        return send_error(c, MHD_HTTP_BAD_REQUEST, "empty body: send an image file or {\"pixels\": [784 numbers]}");
    size_t skip = 0;
    while (skip < req->len && strchr(" \t\r\n", req->body[skip]))
        skip++;
    dn_image img;
    dn_error err = {0};
    char msg[512];
    if (skip < req->len && (req->body[skip] == '{' || req->body[skip] == '[')) {
        if (parse_pixels(req->body, req->len, &img, msg, sizeof msg) != 0)
            return send_error(c, MHD_HTTP_BAD_REQUEST, msg);
    } else {
        dn_status st = dn_image_decode(req->body, req->len, s->max_pixels, &img, &err);
        if (st != DN_OK)
            return send_error(c, st == DN_ELIMIT ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST, err.msg);
    }
    float input[28 * 28], probs[DN_N_CLASSES]; /* (h, w, 1) */
    dn_status st = dn_preprocess(&img, s->in, input, &err);
    dn_image_free(&img);
    if (st == DN_ENOTFOUND) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddNullToObject(o, "digit");
            cJSON_AddStringToObject(o, "message", "no digit found");
        }
        return send_json(c, MHD_HTTP_OK, o);
    }
    if (st == DN_OK && s->qnet) { /* the int8 path takes the raw pixels of the data set's units */
        uint8_t pixels[28 * 28];
        int8_t logits[DN_N_CLASSES];
        for (int k = 0; k < s->in.h * s->in.w; k++)
            pixels[k] = (uint8_t)(input[k] * (float)dn_qnet_raw_max(s->qnet) + 0.5f);
        if ((st = dn_qnet_predict(s->qnet, pixels, 1, logits, NULL, &err)) == DN_OK)
            dn_qnet_probabilities(s->qnet, logits, 1, probs);
    } else if (st == DN_OK) {
        st = dn_net_predict(s->net, input, 1, probs, &err);
    }
    if (st != DN_OK)
        return send_error(c, st == DN_ENOMEM ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR, err.msg);
    if (cli_first_nonfinite(probs, 1) >= 0) { /* no answer rather than a wrong one */
        snprintf(msg, sizeof msg, "%s: %s", s->model_path, CLI_NOT_A_NUMBER);
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
    }
    int best = 0;
    for (int k = 1; k < DN_N_CLASSES; k++)
        if (probs[k] > probs[best])
            best = k;
    int n = s->in.h * s->in.w, seen[28 * 28];
    for (int k = 0; k < n; k++)
        seen[k] = (int)(input[k] * 255.0f + 0.5f);
    double p[DN_N_CLASSES];
    for (int k = 0; k < DN_N_CLASSES; k++)
        p[k] = probs[k];
    int shape[2] = {s->in.h, s->in.w};
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddNumberToObject(o, "digit", best);
        cJSON_AddNumberToObject(o, "probability", probs[best]);
        cJSON_AddItemToObject(o, "probabilities", cJSON_CreateDoubleArray(p, DN_N_CLASSES));
        cJSON_AddItemToObject(o, "preprocessed", cJSON_CreateIntArray(seen, n));
        cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(shape, 2));
    }
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    server *s = cls;
    request *req = *con_cls;
    if (!req) { /* the first call: headers only */
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull(length, NULL, 10) > MAX_BODY) {
            req->too_large = 1;
            serve_guard_busy(c);
            return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body over 1 MB");
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->too_large || req->len + n > MAX_BODY) {
            req->too_large = 1; /* keep reading, answer 413 at the end */
            free(req->body);
            req->body = NULL;
            req->len = 0;
            return MHD_YES;
        }
        char *grown = realloc(req->body, req->len + n);
        if (!grown)
            return MHD_NO;
        memcpy(grown + req->len, upload_data, n);
        req->body = grown;
        req->len += n;
        return MHD_YES;
    }
    serve_guard_busy(c); /* the whole request is in: no deadline while it is answered */
    if (req->too_large)
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body over 1 MB");
    int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    int post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        if (!get)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        return send_text(c, MHD_HTTP_OK, "text/html; charset=utf-8", (char *)web_index_html, web_index_html_len,
                         MHD_RESPMEM_PERSISTENT);
    }
    if (!strcmp(url, "/api/health")) {
        if (!get)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
        cJSON *o = cJSON_CreateObject();
        if (o) {
            int shape[3] = {s->in.h, s->in.w, s->in.c};
            cJSON_AddStringToObject(o, "status", "ok");
            cJSON_AddStringToObject(o, "model", s->model_path);
            cJSON_AddStringToObject(o, "preprocess", dn_preprocess_name(s->in));
            cJSON_AddItemToObject(o, "input", cJSON_CreateIntArray(shape, 3));
        }
        return send_json(c, MHD_HTTP_OK, o);
    }
    if (!strcmp(url, "/api/predict")) {
        if (!post)
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
        return predict(s, c, req);
    }
    return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)code;
    serve_guard_idle(c);
    request *req = *con_cls;
    if (req) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

static int loopback(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return 0;
}

static void log_error(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fputs("digitnet serve: ", stderr);
    vfprintf(stderr, fmt, ap);
}

int cmd_serve(cli_options *o)
{
    dn_error err = {0};
    int saved = 0;
    server s = {.model_path = o->model};
    if (cli_open_model(o->model, o->seed, &s.net, &saved, &err) != DN_OK)
        return cli_fail(&err);
    if (!saved) {
        dn_net_free(s.net);
        return cli_failf("%s: is a spec, not a trained model; train it with 'digitnet train --out FILE' first", o->model);
    }
    s.in = dn_net_input_shape(s.net);
    if (!dn_preprocess_name(s.in)) {
        dn_net_free(s.net);
        return cli_failf("%s: input %dx%dx%d: only 28x28x1 and 8x8x1 models can be served", o->model, s.in.h, s.in.w,
                         s.in.c);
    }
    if (o->int8) { /* calibrated on the model's training rows, as eval --int8 and export do */
        cli_data data;
        if (cli_quantize(o, s.net, &data, &s.qnet, &err) != DN_OK) {
            dn_net_free(s.net);
            return cli_fail(&err);
        }
        cli_data_free(&data);
    }
    /* One image at a time gains nothing from threads inside the network, and idle OpenMP workers
     * spinning would compete with the connection threads: --threads sizes the pool of those. */
    dn_set_threads(1);
    /* --threads 1: libmicrohttpd's one internal thread answers everything, without the pool option
     * (it warns about a pool of 0 or 1). */
    const unsigned pool = o->threads > 0 ? (unsigned)o->threads : POOL_THREADS;
    struct MHD_OptionItem pool_option[] = {{pool > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool, NULL},
                                           {MHD_OPTION_END, 0, NULL}};
    const char *host = o->host ? o->host : "127.0.0.1";
    int port = o->have_port ? o->port : 8080;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *addr = NULL;
    int gai = getaddrinfo(host, port_text, &hints, &addr);
    if (gai != 0) {
        dn_net_free(s.net);
        return cli_failf("--host %s: %s", host, gai_strerror(gai));
    }
    /* Signals are taken by sigwait below; block them before the server's threads start so that
     * they inherit the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    serve_limits limits = {
        .max_connections = o->max_connections ? (unsigned)o->max_connections : MAX_CONNECTIONS,
        .max_per_client = o->max_per_client ? (unsigned)o->max_per_client : MAX_PER_CLIENT,
        .request_seconds = o->request_timeout ? (unsigned)o->request_timeout : REQUEST_SECONDS,
    };
    s.max_pixels = o->max_pixels ? (size_t)o->max_pixels : MAX_IMAGE_PIXELS;
    /* Each connection is a descriptor: make room for the limit (the usual soft limit is 1024). */
    struct rlimit files;
    rlim_t want = (rlim_t)limits.max_connections + 128;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < want) {
        files.rlim_cur = files.rlim_max == RLIM_INFINITY || files.rlim_max > want ? want : files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
        if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < want) {
            limits.max_connections = files.rlim_cur > 256 ? (unsigned)(files.rlim_cur - 128) : 128;
            fprintf(stderr, "digitnet: warning: only %llu open files allowed: at most %u connections\n",
                    (unsigned long long)files.rlim_cur, limits.max_connections);
        }
    }
    serve_guard *guard = serve_guard_new(&limits);
    if (!guard) {
        freeaddrinfo(addr);
        dn_net_free(s.net);
        return cli_failf("cannot start the connection watchdog (out of memory or threads)");
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (addr->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, handle, &s, MHD_OPTION_EXTERNAL_LOGGER, log_error, NULL,
        MHD_OPTION_SOCK_ADDR, addr->ai_addr, MHD_OPTION_ARRAY, pool_option,
        MHD_OPTION_CONNECTION_TIMEOUT, limits.request_seconds, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        /* above the guard's limit, so that the guard sees a newcomer and can close someone older */
        MHD_OPTION_CONNECTION_LIMIT, limits.max_connections + 64u, MHD_OPTION_NOTIFY_CONNECTION, serve_guard_notify,
        guard, MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    int status = 0;
    if (!d) {
        status = cli_failf("cannot listen on %s port %d (in use, or not an address of this machine?)", host, port);
    } else {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        int bound = info ? info->port : port;
        int v6 = addr->ai_family == AF_INET6;
        if (!loopback(addr->ai_addr))
            fprintf(stderr, "digitnet: warning: listening on %s, not loopback: anyone who can reach this machine can use it\n",
                    host);
        printf("digitnet: serving %s (%s%s) on http://%s%s%s:%d/ - Ctrl-C to stop\n", o->model, dn_preprocess_name(s.in),
               s.qnet ? ", int8" : "", v6 ? "[" : "", host, v6 ? "]" : "", bound);
        fflush(stdout);
        int sig = 0;
        while (sigwait(&stop, &sig) != 0)
            ;
        serve_guard_close_all(guard); /* else stopping waits for each open connection */
        MHD_stop_daemon(d);
        printf("digitnet: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    freeaddrinfo(addr);
    serve_guard_free(guard);
    dn_qnet_free(s.qnet);
    dn_net_free(s.net);
    return status;
}
