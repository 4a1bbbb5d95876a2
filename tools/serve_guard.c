/* Connection limits and request deadlines for digitnet serve; see serve_guard.h. */
#include "serve_guard.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define WATCH_MS 200 /* how often the deadlines are checked */

/* One open connection, in a list oldest first. */
typedef struct tracked {
    struct tracked *prev, *next;
    serve_guard *guard;
    int fd;
    struct sockaddr_storage addr;
    double since; /* when it opened, or its last answer was done */
    int busy;     /* its request is in and being answered */
    int closing;  /* shut down by us: no longer counted */
} tracked;

struct serve_guard {
    serve_limits limits;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    tracked *oldest, *newest;
    int stopping;
    pthread_t watchdog;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int same_client(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                       sizeof(struct in6_addr));
    return 1;
}

/* Under the lock. The socket is shut down, not closed: libmicrohttpd sees the end of the stream,
 * closes it and tells us (MHD_CONNECTION_NOTIFY_CLOSED) before the descriptor can be reused. */
static void close_connection(tracked *t)
{
    if (!t->closing) {
        t->closing = 1;
        shutdown(t->fd, SHUT_RDWR);
    }
}

/* Under the lock: the oldest connection other than t that is open and not being answered, of t's
 * client when same_only. */
static tracked *oldest_idle(serve_guard *g, const tracked *t, int same_only)
{
    for (tracked *o = g->oldest; o; o = o->next)
        if (o != t && !o->closing && !o->busy && (!same_only || same_client(&o->addr, &t->addr)))
            return o;
    return NULL;
}

/* Under the lock: t has just arrived. When it takes its client, or everybody, over the limit, the
 * oldest connection of the same group that is not being answered goes; if there is none, t does. */
static void enforce_limits(serve_guard *g, tracked *t)
{
    unsigned total = 0, mine = 0;
    for (tracked *o = g->oldest; o; o = o->next)
        if (!o->closing) {
            total++;
            mine += same_client(&o->addr, &t->addr);
        }
    if (g->limits.max_per_client && mine > g->limits.max_per_client) {
        tracked *victim = oldest_idle(g, t, 1);
        close_connection(victim ? victim : t);
        if (!victim)
            return;
        total--;
    }
    if (g->limits.max_connections && total > g->limits.max_connections) {
        tracked *victim = oldest_idle(g, t, 0);
        close_connection(victim ? victim : t);
    }
}

static void *watch(void *arg)
{
    serve_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCH_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->wake, &g->lock, &until);
        /* The list is in `since` order (busy entries aside), so the scan stops at the first in time. */
        double limit = now() - (double)g->limits.request_seconds;
        for (tracked *t = g->oldest; t && t->since < limit; t = t->next)
            if (!t->busy)
                close_connection(t);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

serve_guard *serve_guard_new(const serve_limits *limits)
{
    serve_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->limits = *limits;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    if (pthread_create(&g->watchdog, NULL, watch, g) != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void serve_guard_free(serve_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->watchdog, NULL);
    while (g->oldest) { /* none once the daemon has stopped; just in case */
        tracked *t = g->oldest;
        g->oldest = t->next;
        free(t);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static void unlink_tracked(serve_guard *g, tracked *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        g->oldest = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        g->newest = t->prev;
    t->prev = t->next = NULL;
}

static void append(serve_guard *g, tracked *t)
{
    t->prev = g->newest;
    t->next = NULL;
    if (g->newest)
        g->newest->next = t;
    else
        g->oldest = t;
    g->newest = t;
}

void serve_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code)
{
    serve_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        tracked *t = calloc(1, sizeof *t);
        if (!t || !fd) {
            free(t); /* untracked: no deadline for this one, but no harm either */
            return;
        }
        t->guard = g;
        t->fd = fd->connect_fd;
        if (addr && addr->client_addr) {
            size_t len = addr->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                  : sizeof(struct sockaddr_in);
            memcpy(&t->addr, addr->client_addr, len);
        }
        t->since = now();
        pthread_mutex_lock(&g->lock);
        append(g, t);
        enforce_limits(g, t);
        pthread_mutex_unlock(&g->lock);
        *socket_context = t;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        tracked *t = *socket_context;
        pthread_mutex_lock(&g->lock);
        unlink_tracked(g, t);
        pthread_mutex_unlock(&g->lock);
        free(t);
        *socket_context = NULL;
    }
}

static void mark(struct MHD_Connection *c, int busy)
{
    const union MHD_ConnectionInfo *ctx = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    tracked *t = ctx ? ctx->socket_context : NULL;
    if (!t)
        return;
    serve_guard *g = t->guard;
    pthread_mutex_lock(&g->lock);
    if (t->busy != busy) {
        t->busy = busy;
        if (!busy) { /* a new wait starts: to the newest end, so the list stays in `since` order */
            t->since = now();
            unlink_tracked(g, t);
            append(g, t);
        }
    }
    pthread_mutex_unlock(&g->lock);
}

void serve_guard_busy(struct MHD_Connection *c)
{
    mark(c, 1);
}

void serve_guard_idle(struct MHD_Connection *c)
{
    mark(c, 0);
}

void serve_guard_close_all(serve_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    for (tracked *t = g->oldest; t; t = t->next)
        close_connection(t);
    pthread_mutex_unlock(&g->lock);
}
