#include "dn_service.h"

#include "dn_api.h"
#include "dn_base64.h"
#include "dn_clock.h"
#include "dn_console.h"
#include "dn_log.h"
#include "dn_request.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SCORE_TOP_PATCHES 5
#define NO_MODEL_RETRY_S 5  /* Retry-After while no model is loaded */
#define BUSY_RETRY_S 1      /* Retry-After when a deadline ran out in the queue */
#define WATCH_TICK_MS 100   /* the scorer's watcher checks for shutdown this often */

/* ---- responses ---- */

void dn_svc_response_free(dn_svc_response *rs)
{
    free(rs->body);
    memset(rs, 0, sizeof *rs);
}

static void set_json(dn_svc_response *rs, int status, cJSON *o)
{
    free(rs->body);
    rs->body = cJSON_PrintUnformatted(o);
    rs->len = rs->body ? strlen(rs->body) : 0;
    rs->status = rs->body ? status : 500;
    rs->content_type = "application/json";
    cJSON_Delete(o);
}

void dn_svc_error(dn_svc_response *rs, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_json(rs, status, dn_api_error_json(code, msg));
}

static void error_from_fail(dn_svc_response *rs, const dn_api_fail *f)
{
    dn_svc_error(rs, f->status, f->code, "%s", f->message);
}

/* ---- routing ---- */

typedef struct route_def {
    const char *path;
    dn_route route;
    const char *method;
    int prefix; /* path is a prefix followed by an id */
} route_def;

static const route_def ROUTES[] = {
    {"/score", DN_ROUTE_SCORE, "POST", 0},
    {"/feedback", DN_ROUTE_FEEDBACK, "POST", 0},
    {"/jobs/", DN_ROUTE_JOB, "GET", 1},
    {"/model", DN_ROUTE_MODEL, "GET", 0},
    {"/model/rollback", DN_ROUTE_ROLLBACK, "POST", 0},
    {"/healthz", DN_ROUTE_HEALTHZ, "GET", 0},
    {"/v2/health/live", DN_ROUTE_HEALTHZ, "GET", 0},
    {"/readyz", DN_ROUTE_READYZ, "GET", 0},
    {"/v2/health/ready", DN_ROUTE_READYZ, "GET", 0},
    {"/metrics", DN_ROUTE_METRICS, "GET", 0},
    {"/", DN_ROUTE_CONSOLE, "GET", 0},
};

const char *dn_route_name(dn_route route)
{
    for (size_t i = 0; i < sizeof ROUTES / sizeof *ROUTES; i++)
        if (ROUTES[i].route == route)
            return route == DN_ROUTE_JOB ? "/jobs/{id}" : ROUTES[i].path;
    return "other";
}

int dn_route_heavy(dn_route route)
{
    return route == DN_ROUTE_SCORE || route == DN_ROUTE_FEEDBACK;
}

static const route_def *find_route(const char *path)
{
    for (size_t i = 0; i < sizeof ROUTES / sizeof *ROUTES; i++) {
        const route_def *d = &ROUTES[i];
        size_t n = strlen(d->path);
        if (d->prefix ? !strncmp(path, d->path, n) && path[n] && !strchr(path + n, '/')
                      : !strcmp(path, d->path))
            return d;
    }
    return NULL;
}

/* Compares every byte whatever differs, so the time taken says nothing about the key. */
static int same_secret(const char *given, const char *key)
{
    size_t n = strlen(given), k = strlen(key);
    unsigned char diff = n != k;
    for (size_t i = 0; i < k; i++)
        diff |= (unsigned char)(key[i] ^ (i < n ? given[i] : 0));
    return diff == 0;
}

static int authorised(const dn_config *c, const dn_svc_request *rq, dn_svc_response *rs)
{
    if (c->api_key[0]) {
        const char *a = rq->authorization;
        if (a && !strncasecmp(a, "Bearer ", 7) && same_secret(a + 7, c->api_key))
            return 1;
        rs->auth_challenge = 1;
        dn_svc_error(rs, 401, "unauthorized", "%s", a ? "wrong API key" : "this endpoint needs Authorization: Bearer <api key>");
        return 0;
    }
    if (dn_config_is_loopback(c) || c->allow_insecure_writes)
        return 1;
    dn_svc_error(rs, 403, "writes_disabled",
                 "the server listens beyond loopback without an API key: set api_key (or allow_insecure_writes)");
    return 0;
}

int dn_service_route(dn_service *s, const dn_svc_request *rq, dn_route *route, dn_svc_response *rs)
{
    const route_def *d = find_route(rq->path);
    *route = DN_ROUTE_NONE;
    if (!d) {
        dn_svc_error(rs, 404, "not_found", "no such endpoint: %.200s", rq->path);
        return rs->status;
    }
    int get = !strcmp(d->method, "GET");
    if (strcmp(rq->method, d->method) && !(get && !strcmp(rq->method, "HEAD"))) {
        rs->allow = get ? "GET, HEAD" : d->method;
        dn_svc_error(rs, 405, "method_not_allowed", "%s takes %s", d->path, rs->allow);
        return rs->status;
    }
    if (d->route == DN_ROUTE_FEEDBACK || d->route == DN_ROUTE_ROLLBACK) {
        pthread_rwlock_rdlock(&s->cfg_lock);
        int ok = authorised(&s->cfg, rq, rs);
        pthread_rwlock_unlock(&s->cfg_lock);
        if (!ok)
            return rs->status;
    }
    *route = d->route;
    return 0;
}

size_t dn_service_max_body(dn_service *s)
{
    pthread_rwlock_rdlock(&s->cfg_lock);
    size_t n = s->cfg.max_body_bytes;
    pthread_rwlock_unlock(&s->cfg_lock);
    return n;
}

void dn_service_request_id(dn_service *s, const char *given, dn_svc_request *rq)
{
    size_t n = given ? strlen(given) : 0;
    int sane = n >= 1 && n <= 64 && strspn(given, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
    if (sane) {
        memcpy(rq->request_id, given, n + 1);
        return;
    }
    unsigned long long seq = atomic_fetch_add(&s->next_id, 1);
    snprintf(rq->request_id, sizeof rq->request_id, "%08x-%08llx", (unsigned)getpid(), seq);
}

/* ---- the model as requests see it ---- */

static void model_name(const dn_live *l, char *out, size_t len)
{
    const char *base = strrchr(l->path, '/');
    base = base ? base + 1 : l->path;
    const char *dot = strstr(base, ".safetensors");
    snprintf(out, len, "%.*s", dot ? (int)(dot - base) : (int)strlen(base), base);
}

static cJSON *model_ref_json(const dn_live *l)
{
    char name[256];
    model_name(l, name, sizeof name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "version", l->version);
    return o;
}

/* ---- POST /score ---- */

/* Maps an image decoding error to its answer. */
static void image_error(dn_svc_response *rs, const dn_error *err, const char *what)
{
    if (err->code == DN_ETOOBIG)
        dn_svc_error(rs, 413, "image_too_large", "%s: %s", what, err->msg);
    else if (err->code == DN_EUNSUPPORTED)
        dn_svc_error(rs, 422, "unsupported_image", "%s: %s", what, err->msg);
    else if (err->code == DN_EFORMAT || err->code == DN_EINVAL)
        dn_svc_error(rs, 422, "invalid_image", "%s: %s", what, err->msg);
    else
        dn_svc_error(rs, 500, "internal", "%s: %s", what, err->msg);
}

static int decode(const dn_config *c, dn_api_blob b, dn_image *img, dn_error *err)
{
    dn_decode_opts o = {.max_pixels = (uint64_t)c->max_pixels};
    return dn_image_decode(img, b.data, b.len, &o, err);
}

/* The worker's extractor, made for the model's input size. */
static int worker_extractor(dn_service *s, int worker, int size, dn_extractor **x, dn_error *err)
{
    dn_svc_worker *w = &s->workers[worker];
    if (w->size != size) {
        if (w->size)
            dn_extractor_free(&w->x);
        w->size = 0;
        if (dn_extractor_init(&w->x, &s->bb, size, NULL)) {
            *err = w->x.err;
            dn_extractor_free(&w->x);
            return err->code;
        }
        w->size = size;
    }
    *x = &w->x;
    return DN_OK;
}

static void extract_for(dn_extractor *x, const dn_model *m)
{
    x->mid_only = dn_model_mid_only(m);
    x->scales = m->scales;
}

typedef struct score_ctx {
    dn_service *s;
    const dn_config *c;
    const dn_svc_request *rq;
    const dn_live *l;
    dn_extractor *x;
    int heatmap;
    double queue_ms;
} score_ctx;

static void add_heatmap(cJSON *o, const dn_model *m, const dn_image *img, const dn_score *sc, dn_error *err)
{
    uint8_t *png = NULL;
    size_t len = 0;
    if (dn_api_heatmap_png(m, img, sc, &png, &len, err))
        return;
    char *b64 = malloc(dn_base64_encoded_len(len) + 1);
    if (b64) {
        dn_base64_encode(png, len, b64);
        cJSON *h = cJSON_AddObjectToObject(o, "heatmap");
        cJSON_AddStringToObject(h, "format", "png");
        cJSON_AddNumberToObject(h, "width", img->width);
        cJSON_AddNumberToObject(h, "height", img->height);
        cJSON_AddStringToObject(h, "data", b64);
    } else {
        dn_error_set(err, DN_ENOMEM, "out of memory for the heatmap");
    }
    free(b64);
    free(png);
}

static cJSON *timing_json(double queue, double decode_ms, double infer, double total)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "queue", dn_api_round(queue));
    cJSON_AddNumberToObject(t, "decode", dn_api_round(decode_ms));
    cJSON_AddNumberToObject(t, "inference", dn_api_round(infer));
    cJSON_AddNumberToObject(t, "total", dn_api_round(total));
    return t;
}

/* Scores one image into *out; on failure rs holds the answer. */
static int score_image(score_ctx *k, dn_api_blob b, const char *what, cJSON **out, dn_svc_response *rs)
{
    double t0 = dn_clock_now();
    if ((t0 - k->rq->arrived) * 1e3 > k->c->deadline_ms) {
        rs->retry_after = BUSY_RETRY_S;
        dn_svc_error(rs, 503, "deadline_exceeded", "the request waited %.0f ms (deadline %d ms)",
                     (t0 - k->rq->arrived) * 1e3, k->c->deadline_ms);
        return -1;
    }
    dn_image img;
    dn_feats f;
    dn_score sc;
    dn_image_init(&img);
    dn_feats_init(&f);
    dn_score_init(&sc);
    dn_error err;
    dn_error_clear(&err);
    int rc = decode(k->c, b, &img, &err);
    if (rc)
        image_error(rs, &err, what);
    double t1 = dn_clock_now();
    if (!rc && (rc = dn_extractor_image(k->x, &img, 0, &f)))
        dn_svc_error(rs, 500, "internal", "%s: %s", what, k->x->err.msg);
    if (!rc && (rc = dn_model_score(&k->l->model, &f, &sc, &err)))
        dn_svc_error(rs, 500, "internal", "%s: %s", what, err.msg);
    double t2 = dn_clock_now();
    cJSON *o = NULL;
    if (!rc) {
        o = dn_api_score_json(&k->l->model, &sc, img.width, img.height, SCORE_TOP_PATCHES);
        cJSON_AddStringToObject(o, "request_id", k->rq->request_id);
        cJSON_AddItemToObject(o, "model", model_ref_json(k->l));
        cJSON *im = cJSON_AddObjectToObject(o, "image");
        cJSON_AddNumberToObject(im, "width", img.width);
        cJSON_AddNumberToObject(im, "height", img.height);
        if (k->heatmap)
            add_heatmap(o, &k->l->model, &img, &sc, &err);
        if (err.code) {
            dn_svc_error(rs, 500, "internal", "%s: heatmap: %s", what, err.msg);
            cJSON_Delete(o);
            o = NULL;
            rc = -1;
        }
    }
    if (o)
        cJSON_AddItemToObject(o, "timing_ms", timing_json(k->queue_ms, (t1 - t0) * 1e3, (t2 - t1) * 1e3,
                                                          (dn_clock_now() - t0) * 1e3 + k->queue_ms));
    dn_score_free(&sc);
    dn_feats_free(&f);
    dn_image_free(&img);
    *out = o;
    return rc;
}

static int heatmap_param(const dn_svc_request *rq, int *on, dn_svc_response *rs)
{
    const char *h = rq->query_heatmap;
    *on = h && !strcmp(h, "png");
    if (!h || !strcmp(h, "none") || *on)
        return 0;
    dn_svc_error(rs, 400, "invalid_parameter", "heatmap takes none or png");
    return -1;
}

static void score_all(score_ctx *k, const dn_api_input *in, dn_svc_response *rs)
{
    cJSON *results = cJSON_CreateArray(), *one = NULL;
    for (int i = 0; i < in->n_images; i++) {
        char what[32];
        snprintf(what, sizeof what, in->batch ? "image %d" : "image", i);
        if (score_image(k, in->images[i], what, &one, rs)) {
            cJSON_Delete(results);
            return;
        }
        cJSON_AddItemToArray(results, one);
    }
    if (!in->batch) {
        cJSON *single = cJSON_DetachItemFromArray(results, 0);
        cJSON_Delete(results);
        set_json(rs, 200, single);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "results", results);
    set_json(rs, 200, o);
}

static void handle_score(dn_service *s, const dn_config *c, const dn_svc_request *rq, int worker,
                         dn_svc_response *rs)
{
    score_ctx k = {s, c, rq, NULL, NULL, 0, (dn_clock_now() - rq->arrived) * 1e3};
    if (heatmap_param(rq, &k.heatmap, rs))
        return;
    dn_api_input in;
    dn_api_fail fail;
    dn_api_input_init(&in);
    if (dn_api_parse_input(rq->content_type, rq->body, rq->len, c->max_batch, &in, &fail)) {
        error_from_fail(rs, &fail);
        return;
    }
    dn_live *l = dn_registry_acquire(&s->reg);
    dn_error err;
    dn_error_clear(&err);
    if (!l) {
        rs->retry_after = NO_MODEL_RETRY_S;
        dn_svc_error(rs, 503, "no_model", "no model is loaded yet");
    } else if (worker_extractor(s, worker, l->model.size, &k.x, &err)) {
        dn_svc_error(rs, 500, "internal", "%s", err.msg);
    } else {
        k.l = l;
        extract_for(k.x, &l->model);
        score_all(&k, &in, rs);
    }
    if (l)
        dn_registry_release(&s->reg, l);
    dn_api_input_free(&in);
}

/* ---- POST /feedback ---- */

/* The image (and mask) must decode before anything is stored: training must not choke. */
static int check_feedback_images(const dn_config *c, const dn_api_input *in, dn_svc_response *rs)
{
    dn_image img, mask;
    dn_image_init(&img);
    dn_image_init(&mask);
    dn_error err;
    dn_error_clear(&err);
    int rc = decode(c, in->images[0], &img, &err);
    if (rc)
        image_error(rs, &err, "image");
    if (!rc && in->mask.len && (rc = decode(c, in->mask, &mask, &err)))
        dn_svc_error(rs, err.code == DN_ETOOBIG ? 413 : 422, "invalid_mask", "mask: %s", err.msg);
    if (!rc && in->mask.len && (mask.width != img.width || mask.height != img.height)) {
        rc = -1;
        dn_svc_error(rs, 422, "mask_size_mismatch", "the mask is %dx%d, the image %dx%d", mask.width,
                     mask.height, img.width, img.height);
    }
    dn_image_free(&img);
    dn_image_free(&mask);
    return rc;
}

static int feedback_label(const dn_api_input *in, const dn_svc_request *rq, dn_svc_response *rs)
{
    const char *label = in->label[0] ? in->label : rq->query_label;
    int is_anomaly = label ? dn_api_label_parse(label) : -1;
    if (is_anomaly < 0)
        dn_svc_error(rs, 400, "invalid_label", "%s", label ? "label must be anomaly or normal" : "label is required: anomaly or normal");
    return is_anomaly;
}

static void feedback_answer(dn_service *s, const char *id, int duplicate, int is_anomaly,
                            dn_svc_response *rs)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "feedback_id", id);
    cJSON_AddBoolToObject(o, "duplicate", duplicate);
    cJSON_AddStringToObject(o, "label", is_anomaly ? "anomaly" : "normal");
    cJSON *r = cJSON_AddObjectToObject(o, "retrain");
    if (s->rt.started && !duplicate) {
        char job[32];
        const char *status;
        dn_retrain_notify(&s->rt, job, &status);
        cJSON_AddStringToObject(r, "job_id", job);
        cJSON_AddStringToObject(r, "status", status);
    } else {
        cJSON_AddNullToObject(r, "job_id");
        cJSON_AddStringToObject(r, "status", "not_scheduled");
    }
    set_json(rs, 202, o);
}

static void handle_feedback(dn_service *s, const dn_config *c, const dn_svc_request *rq, dn_svc_response *rs)
{
    dn_api_input in;
    dn_api_fail fail;
    dn_api_input_init(&in);
    if (dn_api_parse_input(rq->content_type, rq->body, rq->len, 1, &in, &fail)) {
        if (fail.status == 413 && !strcmp(fail.code, "batch_too_large"))
            dn_api_fail_set(&fail, 400, "one_image", "feedback takes one image per request");
        error_from_fail(rs, &fail);
        return;
    }
    int is_anomaly = feedback_label(&in, rq, rs);
    if (is_anomaly >= 0 && !check_feedback_images(c, &in, rs)) {
        char id[65];
        int duplicate = 0;
        dn_error err;
        dn_error_clear(&err);
        if (dn_store_put(&s->store, in.images[0].data, in.images[0].len, is_anomaly, in.mask.data,
                         in.mask.len, id, &duplicate, &err)) {
            if (err.code == DN_ENOSPC)
                dn_svc_error(rs, 507, "insufficient_storage", "%s", err.msg);
            else
                dn_svc_error(rs, 500, "storage_error", "%s", err.msg);
            dn_log_msg(DN_LOG_ERROR, "feedback_store", "%s: %s", rq->request_id, err.msg);
        } else {
            dn_prom_feedback(&s->prom, is_anomaly ? "anomaly" : "normal", duplicate);
            feedback_answer(s, id, duplicate, is_anomaly, rs);
        }
    }
    dn_api_input_free(&in);
}

/* ---- the light endpoints ---- */

static cJSON *rfc3339(long long t)
{
    char buf[32];
    dn_log_time((double)t, 0, buf);
    return cJSON_CreateString(buf);
}

static cJSON *versions_json(dn_service *s)
{
    cJSON *arr = cJSON_CreateArray();
    dn_version_info *v = NULL;
    int n = 0;
    dn_error err;
    if (dn_registry_versions(&s->reg, &v, &n, &err))
        n = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].rejected)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "version", v[i].version);
        cJSON_AddStringToObject(o, "file", v[i].file);
        cJSON_AddNumberToObject(o, "bytes", (double)v[i].bytes);
        cJSON_AddItemToObject(o, "created", rfc3339(v[i].mtime));
        cJSON_AddBoolToObject(o, "live", v[i].live);
        cJSON_AddItemToArray(arr, o);
    }
    free(v);
    return arr;
}

static const char *role_name(dn_role r)
{
    return r == DN_ROLE_SCORER ? "scorer" : r == DN_ROLE_TRAINER ? "trainer" : "all";
}

static void handle_model(dn_service *s, const dn_config *c, dn_svc_response *rs)
{
    dn_live *l = dn_registry_acquire(&s->reg);
    if (!l) {
        rs->retry_after = NO_MODEL_RETRY_S;
        dn_svc_error(rs, 503, "no_model", "no model is loaded yet");
        return;
    }
    cJSON *o = model_ref_json(l);
    cJSON_AddStringToObject(o, "role", role_name(c->role));
    cJSON_AddItemToObject(o, "model", dn_api_model_json(&l->model));
    dn_registry_release(&s->reg, l);
    cJSON_AddItemToObject(o, "versions", versions_json(s));
    set_json(rs, 200, o);
}

static void log_report(void *ctx, const char *file, const char *why)
{
    (void)ctx;
    dn_log_msg(DN_LOG_WARN, "model_skipped", "%s: %s", file, why);
}

static void handle_rollback(dn_service *s, dn_svc_response *rs)
{
    int from = 0, to = 0;
    dn_error err;
    dn_error_clear(&err);
    if (dn_registry_rollback(&s->reg, log_report, NULL, &from, &to, &err)) {
        if (err.code == DN_EINVAL)
            dn_svc_error(rs, 422, "no_older_version", "%s", err.msg);
        else
            dn_svc_error(rs, 500, "internal", "%s", err.msg);
        return;
    }
    dn_log_msg(DN_LOG_WARN, "model_rollback", "version %d rejected, version %d is live", from, to);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "from", from);
    cJSON_AddNumberToObject(o, "to", to);
    set_json(rs, 200, o);
}

static void handle_job(dn_service *s, const dn_svc_request *rq, dn_svc_response *rs)
{
    const char *id = rq->path + strlen("/jobs/");
    cJSON *o = dn_retrain_job_json(&s->rt, id);
    if (o)
        set_json(rs, 200, o);
    else
        dn_svc_error(rs, 404, "unknown_job", "no job %.64s here", id);
}

static void handle_ready(dn_service *s, dn_svc_response *rs)
{
    int version = dn_registry_live_version(&s->reg);
    if (atomic_load(&s->draining) || version < 0) {
        dn_svc_error(rs, 503, "not_ready", "%s", version < 0 ? "no model is loaded yet" : "shutting down");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ready");
    cJSON_AddNumberToObject(o, "model_version", version);
    set_json(rs, 200, o);
}

static void handle_metrics(dn_service *s, dn_svc_response *rs)
{
    int version = dn_registry_live_version(&s->reg);
    dn_prom_gauge(&s->prom, DN_PROM_MODEL_VERSION, version < 0 ? 0 : version);
    dn_prom_gauge(&s->prom, DN_PROM_READY, version >= 0 && !atomic_load(&s->draining));
    dn_prom_gauge(&s->prom, DN_PROM_WORKERS, s->n_workers);
    free(rs->body);
    rs->body = dn_prom_render(&s->prom);
    rs->len = rs->body ? strlen(rs->body) : 0;
    rs->status = rs->body ? 200 : 500;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void handle_console(dn_svc_response *rs)
{
    size_t len;
    const char *page = dn_console_page(&len);
    free(rs->body);
    rs->body = malloc(len + 1);
    if (!rs->body) {
        dn_svc_error(rs, 500, "out_of_memory", "no memory for the console page");
        return;
    }
    memcpy(rs->body, page, len);
    rs->len = len;
    rs->status = 200;
    rs->content_type = "text/html; charset=utf-8";
}

void dn_service_handle(dn_service *s, dn_route route, const dn_svc_request *rq, int worker,
                       dn_svc_response *rs)
{
    pthread_rwlock_rdlock(&s->cfg_lock);
    const dn_config *c = &s->cfg;
    switch (route) {
    case DN_ROUTE_SCORE: handle_score(s, c, rq, worker, rs); break;
    case DN_ROUTE_FEEDBACK: handle_feedback(s, c, rq, rs); break;
    case DN_ROUTE_JOB: handle_job(s, rq, rs); break;
    case DN_ROUTE_MODEL: handle_model(s, c, rs); break;
    case DN_ROUTE_ROLLBACK: handle_rollback(s, rs); break;
    case DN_ROUTE_HEALTHZ: set_json(rs, 200, cJSON_Parse("{\"status\":\"ok\"}")); break;
    case DN_ROUTE_READYZ: handle_ready(s, rs); break;
    case DN_ROUTE_METRICS: handle_metrics(s, rs); break;
    case DN_ROUTE_CONSOLE: handle_console(rs); break;
    default: dn_svc_error(rs, 404, "not_found", "no such endpoint"); break;
    }
    pthread_rwlock_unlock(&s->cfg_lock);
}

/* ---- life cycle ---- */

/* Scorer replicas follow the versions the trainer publishes (and its rollbacks). */
static void *watch_main(void *arg)
{
    dn_service *s = arg;
    int waited = 0;
    while (!atomic_load(&s->stop_watch)) {
        usleep(WATCH_TICK_MS * 1000);
        waited += WATCH_TICK_MS;
        if (waited < s->rt_cfg.watch_interval_ms)
            continue;
        waited = 0;
        int swapped = 0;
        dn_error err;
        dn_error_clear(&err);
        if (dn_registry_refresh(&s->reg, &swapped, log_report, NULL, &err))
            dn_log_msg(DN_LOG_WARN, "model_watch", "%s", err.msg);
        else if (swapped)
            dn_log_msg(DN_LOG_INFO, "model_swapped", "version %d is live", dn_registry_live_version(&s->reg));
    }
    return NULL;
}

static int load_model(dn_service *s, dn_error *err)
{
    if (s->cfg.model[0])
        return dn_registry_load_file(&s->reg, s->cfg.model, err);
    return dn_registry_load_newest(&s->reg, log_report, NULL, err);
}

static int start_background(dn_service *s, dn_error *err)
{
    if (s->cfg.role == DN_ROLE_SCORER) {
        if (pthread_create(&s->watcher, NULL, watch_main, s))
            return dn_error_set(err, DN_ENOMEM, "cannot start the model watcher");
        s->watching = 1;
        return DN_OK;
    }
    return dn_retrain_start(&s->rt, &s->rt_cfg, &s->reg, &s->store, &s->prom, &s->bb, err);
}

int dn_service_init(dn_service *s, const dn_config *cfg, dn_error *err)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->rt_cfg = *cfg;
    pthread_rwlock_init(&s->cfg_lock, NULL);
    atomic_init(&s->next_id, (unsigned long long)time(NULL) << 20);
    dn_backbone_init(&s->bb);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_workers = cfg->workers > 0 ? cfg->workers : (int)(cores > 0 ? cores : 1);
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->workers || dn_prom_init(&s->prom))
        return dn_error_set(err, DN_ENOMEM, "out of memory");
    if (dn_backbone_load(&s->bb, cfg->backbone))
        return dn_error_set(err, s->bb.err.code, "backbone %s: %s", cfg->backbone, s->bb.err.msg);
    if (cfg->backbone_sha256[0] && strcmp(cfg->backbone_sha256, s->bb.sha256))
        return dn_error_set(err, DN_EMISMATCH,
                            "backbone %s has sha256 %s, but backbone_sha256 requires %s: a damaged "
                            "or different file (bring it again: make backbone)",
                            cfg->backbone, s->bb.sha256, cfg->backbone_sha256);
    int rc = dn_store_open(&s->store, cfg->data_dir, err);
    if (!rc)
        rc = dn_registry_open(&s->reg, cfg->data_dir, &s->bb, cfg->keep_versions, err);
    if (!rc)
        rc = load_model(s, err);
    if (!rc)
        rc = start_background(s, err);
    return rc;
}

void dn_service_free(dn_service *s)
{
    if (s->watching) {
        atomic_store(&s->stop_watch, 1);
        pthread_join(s->watcher, NULL);
    }
    dn_retrain_stop(&s->rt);
    for (int i = 0; s->workers && i < s->n_workers; i++)
        if (s->workers[i].size)
            dn_extractor_free(&s->workers[i].x);
    free(s->workers);
    dn_registry_close(&s->reg);
    dn_store_close(&s->store);
    dn_backbone_free(&s->bb);
    dn_prom_free(&s->prom);
    pthread_rwlock_destroy(&s->cfg_lock);
}

int dn_service_reload(dn_service *s, const dn_config *cfg, dn_error *err)
{
    dn_config next = *cfg;
    const dn_config *old = &s->cfg;
    /* what the running process is built around stays; a restart changes it */
    snprintf(next.listen_host, sizeof next.listen_host, "%s", old->listen_host);
    next.port = old->port;
    next.workers = old->workers;
    next.io_threads = old->io_threads;
    next.role = old->role;
    memcpy(next.data_dir, old->data_dir, sizeof next.data_dir);
    memcpy(next.backbone, old->backbone, sizeof next.backbone);
    memcpy(next.backbone_sha256, old->backbone_sha256, sizeof next.backbone_sha256);
    next.request_timeout_s = old->request_timeout_s;
    next.max_header_bytes = old->max_header_bytes;
    memcpy(next.tls_cert, old->tls_cert, sizeof next.tls_cert);
    memcpy(next.tls_key, old->tls_key, sizeof next.tls_key);
    pthread_rwlock_wrlock(&s->cfg_lock);
    s->cfg = next;
    pthread_rwlock_unlock(&s->cfg_lock);
    return load_model(s, err);
}
