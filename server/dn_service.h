/* dn_service: what the daemon does with a request, independent of how it arrived.
 * dn_http (libmicrohttpd) turns connections into dn_svc_request values and sends the
 * dn_svc_response back; tests and fuzzers call the service directly.
 *
 * A request is routed first, from its method, path and headers alone (unknown path 404,
 * wrong method 405, missing key 401, writes refused 403), so that a refused upload is
 * never read. Scoring and feedback then run on a worker thread with that worker's own
 * forward-pass buffers; everything else is answered at once. */
#ifndef DN_SERVICE_H
#define DN_SERVICE_H

#include "dn_config.h"
#include "dn_prom.h"
#include "dn_registry.h"
#include "dn_retrain.h"
#include "dn_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

typedef enum dn_route {
    DN_ROUTE_NONE = 0,
    DN_ROUTE_SCORE,
    DN_ROUTE_FEEDBACK,
    DN_ROUTE_JOB,
    DN_ROUTE_MODEL,
    DN_ROUTE_ROLLBACK,
    DN_ROUTE_HEALTHZ,
    DN_ROUTE_READYZ,
    DN_ROUTE_METRICS,
    DN_ROUTE_CONSOLE,
} dn_route;

typedef struct dn_svc_request {
    const char *method, *path;       /* path without the query */
    const char *content_type;        /* NULL when absent (as every header below) */
    const char *authorization;
    const char *query_heatmap, *query_label;
    char request_id[65];             /* X-Request-ID as sent (when sane) or generated */
    const unsigned char *body;
    size_t len;
    double arrived;                  /* dn_clock_now() when the request was complete */
} dn_svc_request;

typedef struct dn_svc_response {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const char *content_type;
    int retry_after;   /* seconds; 0 = no Retry-After header */
    const char *allow; /* Allow header of a 405 */
    int auth_challenge; /* 401: send WWW-Authenticate */
} dn_svc_response;

/* One scoring worker's own state. */
typedef struct dn_svc_worker {
    dn_extractor x;
    int size; /* input size x was made for; 0 = none yet */
} dn_svc_worker;

typedef struct dn_service {
    dn_config cfg;            /* the live settings: read under cfg_lock, replaced on SIGHUP */
    pthread_rwlock_t cfg_lock;
    dn_config rt_cfg;         /* the retraining thread's own copy, fixed at start */
    dn_backbone bb;
    dn_registry reg;
    dn_store store;
    dn_retrain rt;
    dn_prom prom;
    dn_svc_worker *workers;
    int n_workers;
    atomic_int draining;
    atomic_ullong next_id;
    int port; /* the bound port, for logs */
    pthread_t watcher; /* scorer role: follows new model versions */
    int watching;
    atomic_int stop_watch;
} dn_service;

/* Loads the backbone, opens the feedback store and the model registry, loads the model
 * (cfg->model, else the newest good version), starts retraining (roles all and trainer)
 * or the model watcher (role scorer). The service keeps its own copy of cfg. */
int dn_service_init(dn_service *s, const dn_config *cfg, dn_error *err);
void dn_service_free(dn_service *s);

/* Installs new settings (SIGHUP) and reloads the model. Settings that need a restart
 * (listen, workers, io_threads, data_dir, backbone, role) keep their old values; the
 * result says which were ignored. */
int dn_service_reload(dn_service *s, const dn_config *cfg, dn_error *err);

/* Routes a request by method, path and headers. 0: go on (*route says where); otherwise
 * rs holds the answer. */
int dn_service_route(dn_service *s, const dn_svc_request *rq, dn_route *route, dn_svc_response *rs);
/* Whether a route runs on a worker thread. */
int dn_route_heavy(dn_route route);
/* The route's name for metrics and logs ("/jobs/{id}", ...). */
const char *dn_route_name(dn_route route);
/* The body limit now (settings may be reloaded). */
size_t dn_service_max_body(dn_service *s);
/* Answers a routed request; worker is the calling worker's index (heavy routes), or -1. */
void dn_service_handle(dn_service *s, dn_route route, const dn_svc_request *rq, int worker,
                       dn_svc_response *rs);
/* A JSON error answer. */
void dn_svc_error(dn_svc_response *rs, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void dn_svc_response_free(dn_svc_response *rs);
/* Fills rq->request_id from a client's X-Request-ID (kept when 1..64 characters of
 * [A-Za-z0-9._:-]) or a new one. */
void dn_service_request_id(dn_service *s, const char *given, dn_svc_request *rq);

#endif
