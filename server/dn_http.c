#include "dn_http.h"

#include "dn_clock.h"
#include "dn_file.h"
#include "dn_log.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY_START_CAP (64u << 10) /* first body buffer; grows by doubling up to the limit */
#define QUEUE_FULL_RETRY_S 1
#define WATCHDOG_PERIOD_MS 250 /* how often slow clients are looked for */
#define TLS_FILE_MAX (1u << 20) /* a PEM certificate chain or key */

/* One open connection, for the slow-client watchdog (under dn_http.conns_lock). */
typedef struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    double since;  /* when the request now arriving began: the accept, or the last answer */
    int receiving; /* 0 from a complete request until its answer is sent */
    int cut;       /* shut down by the watchdog */
} http_conn;

/* One request's state, from its headers to its completion. */
typedef struct http_req {
    dn_http *h;
    struct MHD_Connection *conn;
    dn_svc_request rq;
    dn_route route;
    dn_svc_response rs;
    int answered;   /* rs holds the answer */
    int queued;     /* handed to a worker (the connection is suspended until it is done) */
    int too_big;
    unsigned char *body;
    size_t cap;
    size_t limit; /* body limit when the request began */
    double started;
    char method[16];
    http_conn *hc; /* its connection's watchdog entry, NULL when not watched */
} http_req;

static void log_request(const http_req *r)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "request_id", r->rq.request_id);
    cJSON_AddStringToObject(f, "method", r->method);
    cJSON_AddStringToObject(f, "path", dn_route_name(r->route));
    cJSON_AddNumberToObject(f, "status", r->rs.status);
    cJSON_AddNumberToObject(f, "ms", round((dn_clock_now() - r->started) * 1e4) / 10);
    dn_log(r->rs.status >= 500 ? DN_LOG_WARN : DN_LOG_INFO, "request", f);
}

/* Queue depth and requests in flight, as /metrics reports them. */
static void update_load(dn_http *h)
{
    int queued, running;
    dn_pool_load(&h->pool, &queued, &running);
    dn_prom_gauge(&h->svc->prom, DN_PROM_QUEUE_DEPTH, queued);
    dn_prom_gauge(&h->svc->prom, DN_PROM_INFLIGHT, atomic_load(&h->active));
}

static enum MHD_Result send_answer(http_req *r)
{
    dn_svc_response *rs = &r->rs;
    /* the body (a heatmap can make it large) is handed over, not copied: MHD frees it */
    struct MHD_Response *resp =
        rs->body ? MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE)
                 : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    rs->body = NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type ? rs->content_type : "application/json");
    MHD_add_response_header(resp, "X-Request-ID", r->rq.request_id);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    char retry[16];
    if (rs->retry_after) {
        snprintf(retry, sizeof retry, "%d", rs->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    }
    if (rs->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rs->allow);
    if (rs->auth_challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"devnet\"");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)rs->status, resp);
    MHD_destroy_response(resp);
    dn_prom_request(&r->h->svc->prom, dn_route_name(r->route), rs->status, dn_clock_now() - r->started);
    update_load(r->h);
    log_request(r);
    return ok;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Headers are in: route, authorise, and refuse a declared body over the limit before
 * reading a byte of it. */
static http_req *begin(dn_http *h, struct MHD_Connection *conn, const char *url, const char *method)
{
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->conn = conn;
    r->started = dn_clock_now();
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->hc = ci ? ci->socket_context : NULL;
    snprintf(r->method, sizeof r->method, "%s", method);
    dn_svc_request *rq = &r->rq;
    rq->method = r->method;
    rq->path = url;
    rq->content_type = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    rq->authorization = header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    rq->query_heatmap = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "heatmap");
    rq->query_label = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "label");
    dn_service_request_id(h->svc, header(conn, "X-Request-ID"), rq);
    r->answered = dn_service_route(h->svc, rq, &r->route, &r->rs) != 0;
    const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t limit = r->limit = dn_service_max_body(h->svc);
    if (!r->answered && cl && strtoull(cl, NULL, 10) > limit) {
        dn_svc_error(&r->rs, 413, "payload_too_large", "the body is %s bytes; the limit is %zu", cl, limit);
        r->answered = 1;
    }
    return r;
}

/* Appends a piece of the body; past the limit the rest is drained and dropped. */
static void take_body(http_req *r, const char *data, size_t n)
{
    size_t limit = r->limit;
    if (r->answered || r->too_big)
        return;
    if (r->rq.len + n > limit) {
        r->too_big = 1;
        free(r->body);
        r->body = NULL;
        return;
    }
    if (r->rq.len + n > r->cap) {
        size_t cap = r->cap ? r->cap : BODY_START_CAP;
        while (cap < r->rq.len + n)
            cap *= 2;
        cap = cap > limit ? limit : cap;
        unsigned char *b = realloc(r->body, cap);
        if (!b) {
            dn_svc_error(&r->rs, 503, "out_of_memory", "no memory for the body now");
            r->rs.retry_after = QUEUE_FULL_RETRY_S;
            r->answered = 1;
            return;
        }
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->rq.len, data, n);
    r->rq.len += n;
}

static void run_on_worker(void *arg, int worker)
{
    http_req *r = arg;
    dn_service_handle(r->h->svc, r->route, &r->rq, worker, &r->rs);
    r->answered = 1;
    MHD_resume_connection(r->conn);
}

/* The watchdog times a connection only while a request is arriving: from the accept or
 * the last answer until the request is complete. */
static void set_receiving(http_req *r, int receiving)
{
    if (!r->hc)
        return;
    pthread_mutex_lock(&r->h->conns_lock);
    r->hc->receiving = receiving;
    r->hc->since = dn_clock_now();
    pthread_mutex_unlock(&r->h->conns_lock);
}

/* The body is complete. Heavy work goes to a worker: the connection is suspended BEFORE
 * the task is queued, so a fast worker can never resume a connection not yet suspended. */
static enum MHD_Result dispatch(http_req *r)
{
    if (r->too_big) {
        dn_svc_error(&r->rs, 413, "payload_too_large", "the body is over the limit of %zu bytes",
                     r->limit);
        r->answered = 1;
    }
    set_receiving(r, 0);
    if (r->answered)
        return send_answer(r);
    r->rq.body = r->body;
    r->rq.arrived = dn_clock_now();
    if (!dn_route_heavy(r->route)) {
        dn_service_handle(r->h->svc, r->route, &r->rq, -1, &r->rs);
        return send_answer(r);
    }
    r->queued = 1;
    MHD_suspend_connection(r->conn);
    if (dn_pool_submit(&r->h->pool, run_on_worker, r)) {
        r->rs.retry_after = QUEUE_FULL_RETRY_S;
        dn_svc_error(&r->rs, 503, "queue_full", "the scoring queue is full; retry shortly");
        r->answered = 1;
        MHD_resume_connection(r->conn);
    }
    update_load(r->h);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    dn_http *h = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = begin(h, conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        atomic_fetch_add(&h->active, 1);
        /* a refusal is sent at once; MHD then closes instead of reading the body */
        return r->answered ? send_answer(r) : MHD_YES;
    }
    if (*upload_data_size) {
        take_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->queued)
        return r->answered ? send_answer(r) : MHD_YES; /* resumed by its worker */
    return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    dn_http *h = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    set_receiving(r, 1);
    dn_svc_response_free(&r->rs);
    free(r->body);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&h->active, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    dn_http *h = cls;
    http_conn *c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(c = calloc(1, sizeof *c)))
            return; /* not watched: the idle timeout still applies */
        c->fd = ci->connect_fd;
        c->since = dn_clock_now();
        c->receiving = 1;
        pthread_mutex_lock(&h->conns_lock);
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        pthread_mutex_unlock(&h->conns_lock);
        *socket_context = c;
        return;
    }
    if (!c)
        return;
    /* MHD calls this before it closes the socket: under the lock, the watchdog can never
     * shut down a descriptor that has been closed and reused */
    pthread_mutex_lock(&h->conns_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&h->conns_lock);
    free(c);
    *socket_context = NULL;
}

/* Slow clients (slowloris: headers or a body trickled in to hold connections open) are
 * cut off once a request has taken request_timeout_s to arrive; the idle timeout alone
 * would let a client that sends a byte now and then hold a connection for ever.
 * shutdown() makes MHD's next read fail, and MHD then closes the connection itself. */
static void *watch_slow_clients(void *arg)
{
    dn_http *h = arg;
    while (!atomic_load(&h->stopping)) {
        struct timespec ts = {0, WATCHDOG_PERIOD_MS * 1000L * 1000L};
        nanosleep(&ts, NULL);
        double now = dn_clock_now();
        int cut = 0;
        pthread_mutex_lock(&h->conns_lock);
        for (http_conn *c = h->conns; c; c = c->next)
            if (c->receiving && !c->cut && now - c->since > h->request_timeout_s) {
                shutdown(c->fd, SHUT_RDWR);
                c->cut = 1;
                cut++;
            }
        pthread_mutex_unlock(&h->conns_lock);
        if (cut)
            dn_log_msg(DN_LOG_WARN, "slow_client", "closed %d connection%s whose request took over %g s to arrive",
                       cut, cut == 1 ? "" : "s", h->request_timeout_s);
    }
    return NULL;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    dn_log_msg(DN_LOG_WARN, "http", "%s", msg);
}

static int resolve(const dn_config *cfg, struct sockaddr_storage *addr, dn_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int g = getaddrinfo(cfg->listen_host[0] ? cfg->listen_host : NULL, port, &hints, &res);
    if (g)
        return dn_error_set(err, DN_EINVAL, "listen address %s: %s", cfg->listen_host, gai_strerror(g));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return DN_OK;
}

/* One PEM file, NUL-terminated as MHD wants it. */
static int read_pem(const char *path, const char *what, char **out, dn_error *err)
{
    size_t len = 0;
    unsigned char *data = NULL;
    dn_error e;
    int rc = dn_file_read(path, TLS_FILE_MAX, &data, &len, &e);
    if (rc)
        return dn_error_set(err, rc, "%s: %s", what, e.msg);
    if (!memmem(data, len, "-----BEGIN ", 11)) {
        free(data);
        return dn_error_set(err, DN_EFORMAT, "%s %s is not a PEM file", what, path);
    }
    *out = (char *)data;
    return DN_OK;
}

static int load_tls(dn_http *h, const dn_config *cfg, dn_error *err)
{
    if (!cfg->tls_cert[0] && !cfg->tls_key[0])
        return DN_OK;
    if (!cfg->tls_cert[0] || !cfg->tls_key[0])
        return dn_error_set(err, DN_EINVAL, "HTTPS needs both tls_cert and tls_key (%s is empty)",
                            cfg->tls_cert[0] ? "tls_key" : "tls_cert");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return dn_error_set(err, DN_EINVAL, "this libmicrohttpd has no TLS support");
    int rc = read_pem(cfg->tls_cert, "tls_cert", &h->tls_cert, err);
    if (!rc)
        rc = read_pem(cfg->tls_key, "tls_key", &h->tls_key, err);
    h->tls = !rc;
    return rc;
}

static void release(dn_http *h)
{
    if (h->watching) {
        atomic_store(&h->stopping, 1);
        pthread_join(h->watchdog, NULL);
        h->watching = 0;
    }
    dn_pool_free(&h->pool);
    free(h->tls_cert);
    free(h->tls_key);
    h->tls_cert = h->tls_key = NULL;
    pthread_mutex_destroy(&h->conns_lock);
}

int dn_http_start(dn_http *h, dn_service *svc, const dn_config *cfg, dn_error *err)
{
    memset(h, 0, sizeof *h);
    h->svc = svc;
    h->request_timeout_s = cfg->request_timeout_s;
    pthread_mutex_init(&h->conns_lock, NULL);
    struct sockaddr_storage addr;
    int rc = resolve(cfg, &addr, err);
    if (!rc)
        rc = load_tls(h, cfg, err);
    if (!rc)
        rc = dn_pool_init(&h->pool, svc->n_workers, cfg->queue_depth, err);
    if (!rc && pthread_create(&h->watchdog, NULL, watch_slow_clients, h))
        rc = dn_error_set(err, DN_ENOMEM, "cannot start the slow-client watchdog");
    h->watching = !rc;
    if (rc) {
        release(h);
        return rc;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (h->tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_THREAD_POOL_SIZE, cfg->io_threads > 0 ? cfg->io_threads : 1, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)cfg->max_header_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
        {h->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!h->daemon) {
        release(h);
        return dn_error_set(err, DN_EIO, "cannot listen on %s:%d (in use, not allowed%s)", cfg->listen_host,
                            cfg->port, cfg->tls_cert[0] ? ", or the TLS certificate and key do not match" : "");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : cfg->port;
    return DN_OK;
}

void dn_http_stop(dn_http *h, double timeout_s)
{
    if (!h->daemon)
        return;
    MHD_socket listener = MHD_quiesce_daemon(h->daemon);
    double until = dn_clock_now() + timeout_s;
    while (atomic_load(&h->active) > 0 && dn_clock_now() < until) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* workers finish what they hold and resume their connections before MHD stops */
    dn_pool_free(&h->pool);
    MHD_stop_daemon(h->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener); /* quiesce hands the socket over; closed only after the stop */
    h->daemon = NULL;
    release(h);
}
