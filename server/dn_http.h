/* dn_http: libmicrohttpd in front of dn_service. Internal polling threads do I/O only;
 * scoring and feedback run on the dn_pool workers while their connection is suspended,
 * so a slow model never blocks other clients' uploads. */
#ifndef DN_HTTP_H
#define DN_HTTP_H

#include "dn_pool.h"
#include "dn_service.h"

#include <pthread.h>
#include <stdatomic.h>

struct http_conn;

typedef struct dn_http {
    struct MHD_Daemon *daemon;
    dn_service *svc;
    dn_pool pool;
    atomic_int active; /* requests between their first byte and their completion */
    int port;          /* the bound port (useful with port 0) */
    int tls;           /* serving HTTPS */
    /* Slow clients: every open connection, and a watchdog that cuts off those whose
     * request has not fully arrived within request_timeout_s of its start. */
    pthread_mutex_t conns_lock;
    struct http_conn *conns;
    pthread_t watchdog;
    int watching;
    atomic_int stopping;
    double request_timeout_s;
    char *tls_cert, *tls_key; /* PEM, kept while MHD runs */
} dn_http;

/* Binds cfg's listen address and starts serving svc (HTTPS when cfg has tls_cert and
 * tls_key). */
int dn_http_start(dn_http *h, dn_service *svc, const dn_config *cfg, dn_error *err);
/* Graceful stop: stop accepting, wait (at most timeout_s) for requests in flight, then
 * stop the workers and the daemon. */
void dn_http_stop(dn_http *h, double timeout_s);

#endif
