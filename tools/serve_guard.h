/* digitnet serve's defences against clients that hold connections (slowloris): a limit on
 * connections in total and per client address, and a deadline for each request to arrive whole.
 * libmicrohttpd's own inactivity timeout is reset by every byte, so a client sending one header byte
 * every few seconds would keep a connection for ever; and its connection limit refuses newcomers,
 * so whoever holds the connections locks everyone else out. Here, instead:
 *  - a connection that has not delivered its whole request within the deadline (counted from the
 *    connection's start or from its previous answer) is closed without an answer;
 *  - a new connection that takes a client (or the server) over its limit closes that client's (or
 *    anybody's) oldest connection that is not being answered: a request still arriving, or an idle
 *    keep-alive. Only when every connection is busy with an answer is the newcomer closed instead.
 * So a slow or greedy client only ever competes with itself, and a health check gets through. */
#ifndef DN_SERVE_GUARD_H
#define DN_SERVE_GUARD_H

#include <microhttpd.h>

typedef struct serve_limits {
    unsigned max_connections; /* in total */
    unsigned max_per_client;  /* per client IP address */
    unsigned request_seconds; /* a request must arrive whole within this */
} serve_limits;

typedef struct serve_guard serve_guard;

/* Starts the watchdog thread. NULL when out of memory or threads. */
serve_guard *serve_guard_new(const serve_limits *limits);
/* Stops the watchdog; call after MHD_stop_daemon. NULL: no-op. */
void serve_guard_free(serve_guard *g);
/* The MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void serve_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code);
/* The request on c has arrived whole and is being answered: no deadline, not evicted. */
void serve_guard_busy(struct MHD_Connection *c);
/* The answer on c is done: the connection is idle again and its next request's deadline starts. */
void serve_guard_idle(struct MHD_Connection *c);
/* Closes every open connection (their sockets are shut down; libmicrohttpd then frees them), so
 * that stopping the daemon does not wait for clients. */
void serve_guard_close_all(serve_guard *g);

#endif
