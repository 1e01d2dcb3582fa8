/* The live service against openapi.yaml: three devnetd processes (one trained from 60 bottle
 * images; one with no training data and an API key; one listening beyond loopback without
 * a key) answer every endpoint with every status they can produce on loopback. Each answer
 * is recorded as a JSON line (tools/openapi/validate.mjs's format) and the validator must
 * accept them all. Every answer must carry X-Request-ID. */
#include "test_http.h"

#include "dn_base64.h"

#include <sys/prctl.h>
#include <turbojpeg.h>

#define TRAIN_IMAGES 60
#define READY_TIMEOUT_S 300 /* the first model is trained before /readyz answers 200 */
#define JOB_TIMEOUT_S 300
#define STOP_TIMEOUT_S 60
#define POLL_US (10 * 1000) /* job polling: short enough to see a retrain of 0.4 s running */

#define API_KEY "oa-s3cret-key"
#define AUTH "Authorization: Bearer " API_KEY "\r\n"
#define LIT(s) s, strlen(s) /* a string body and its length */
#define CT_PNG "Content-Type: image/png\r\n"
#define CT_JSON "Content-Type: application/json\r\n"
#define BOUNDARY "oaBoundary7Xq"
#define CT_MULTIPART "Content-Type: multipart/form-data; boundary=" BOUNDARY "\r\n"

typedef struct oa_daemon {
    const char *name;
    pid_t pid;
    int port;
    char data[128], log[128];
} oa_daemon;

enum { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_STATES };
static const char *const JOB_STATE_NAMES[JOB_STATES] = {"queued", "running", "succeeded", "failed"};

/* The test's state, global so that the .fini hook can stop the daemons whatever failed. */
static struct {
    char dir[64];
    char train[128], records[128], out[128];
    const char *shared;
    FILE *rec;
    int n_records;
    int passed;
    int job_seen[JOB_STATES];
    oa_daemon main, empty, open;
} R;

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

/* ---- daemons ---- */

/* Starts devnetd with args (after the program name), its stderr in d->log. */
static int oa_start(oa_daemon *d, char *const *args)
{
    devnetd_proc p;
    int rc = devnetd_start(&p, d->log, args);
    d->pid = p.pid;
    d->port = p.port;
    return rc;
}

/* SIGTERM, then SIGKILL if it has not exited in STOP_TIMEOUT_S; the exit status or -1. */
static int oa_stop(oa_daemon *d)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < STOP_TIMEOUT_S * 10 && (got = waitpid(d->pid, &status, WNOHANG)) == 0; i++)
        usleep(100 * 1000);
    if (got != d->pid) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &status, 0);
        status = -1;
    }
    d->pid = 0;
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void oa_fini(void)
{
    oa_stop(&R.main);
    oa_stop(&R.empty);
    oa_stop(&R.open);
    if (R.rec)
        fclose(R.rec);
    R.rec = NULL;
    if (!R.dir[0])
        return;
    if (R.passed) {
        dn_test_rmtree(R.dir);
    } else { /* keep the records, the validator's output and the logs */
        const char *sub[] = {"train", "main", "empty", "open"};
        for (int i = 0; i < 4; i++) {
            char p[128];
            snprintf(p, sizeof p, "%s/%s", R.dir, sub[i]);
            dn_test_rmtree(p);
        }
        fprintf(stderr, "openapi: records, validator output and daemon logs kept in %s\n", R.dir);
    }
}

static void oa_daemon_paths(oa_daemon *d, const char *name)
{
    d->name = name;
    snprintf(d->data, sizeof d->data, "%s/%s", R.dir, name);
    snprintf(d->log, sizeof d->log, "%s/%s.log", R.dir, name);
}

static void link_train_images(void)
{
    snprintf(R.train, sizeof R.train, "%s/train", R.dir);
    cr_assert_eq(mkdir(R.train, 0755), 0);
    char shared[4096];
    cr_assert_not_null(realpath(R.shared, shared));
    for (int i = 0; i < TRAIN_IMAGES; i++) {
        char src[4200], dst[256];
        snprintf(src, sizeof src, "%s/data/mvtec_bottle/train/good/%03d.png", shared, i);
        snprintf(dst, sizeof dst, "%s/%03d.png", R.train, i);
        cr_assert_eq(symlink(src, dst), 0, "symlink %s", src);
    }
}

/* ---- requests and records ---- */

static int rid_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

static int rid_ok(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!rid_char_ok(s[i]))
            return 0;
    return n >= 1 && n <= 64;
}

/* Every answer carries X-Request-ID: the one sent when it was well-formed, else a
 * generated one of that form. */
static void check_request_id(const char *what, const char *sent_headers, const http_answer *a)
{
    char got[256] = "";
    cr_expect_eq(http_header(a, "X-Request-ID", got, sizeof got), 0, "%s: no X-Request-ID header", what);
    cr_expect(rid_ok(got), "%s: X-Request-ID \"%s\" is not 1-64 of [A-Za-z0-9._:-]", what, got);
    const char *p = sent_headers ? strstr(sent_headers, "X-Request-ID: ") : NULL;
    if (p) {
        p += strlen("X-Request-ID: ");
        char sent[256];
        snprintf(sent, sizeof sent, "%.*s", (int)strcspn(p, "\r\n"), p);
        if (rid_ok(sent))
            cr_expect_str_eq(got, sent, "%s: X-Request-ID not echoed", what);
        else
            cr_expect_str_neq(got, sent, "%s: a malformed X-Request-ID was echoed", what);
    }
}

/* One request; the answer in *a (free it). Fails the test when the connection fails. */
static void oa_send(const oa_daemon *d, const char *method, const char *target, const char *headers,
                    const void *body, size_t len, http_answer *a)
{
    char what[300];
    snprintf(what, sizeof what, "%s: %s %s", d->name, method, target);
    cr_assert_eq(http_request(d->port, method, target, headers, body, len, a), 0,
                 "%s: no HTTP answer (see %s)", what, d->log);
    check_request_id(what, headers, a);
}

/* A hand-made request (declared sizes, chunked bodies): raw bytes out, the answer in. */
static void oa_send_raw(const oa_daemon *d, const char *what, const void *req, size_t n,
                        const void *tail, size_t tail_len, http_answer *a)
{
    int rc = http_exchange(d->port, req, n, tail, tail_len, a);
    cr_assert_eq(rc, 0, "%s: no HTTP answer (see %s)", what, d->log);
    check_request_id(what, NULL, a);
}

/* The response headers as a JSON object (names as sent). */
static cJSON *headers_json(const http_answer *a)
{
    cJSON *o = cJSON_CreateObject();
    const char *p = strchr(a->headers, '\n');
    while (p && *++p) {
        size_t line = strcspn(p, "\r\n");
        const char *colon = memchr(p, ':', line);
        if (colon) {
            char name[128], value[4096];
            snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(value, sizeof value, "%.*s", (int)(p + line - v), v);
            cJSON_DeleteItemFromObjectCaseSensitive(o, name);
            cJSON_AddStringToObject(o, name, value);
        }
        p = strchr(p, '\n');
    }
    return o;
}

/* Appends the answer to the records: path without its query, JSON bodies parsed, text
 * bodies as strings. */
static void oa_record(const char *method, const char *target, const http_answer *a)
{
    cJSON *o = cJSON_CreateObject();
    char m[16], ct[256] = "";
    size_t i = 0;
    for (; method[i] && i < sizeof m - 1; i++)
        m[i] = (char)(method[i] | 0x20);
    m[i] = '\0';
    cJSON_AddStringToObject(o, "method", m);
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(target, "?"), target);
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddNumberToObject(o, "status", a->status);
    int has_ct = !http_header(a, "Content-Type", ct, sizeof ct);
    if (has_ct)
        cJSON_AddStringToObject(o, "content_type", ct);
    else
        cJSON_AddNullToObject(o, "content_type");
    cJSON *body = NULL;
    if (a->len && !strncasecmp(ct, "application/json", 16))
        body = cJSON_ParseWithLength(a->body, a->len);
    if (!body && a->len)
        body = cJSON_CreateString(a->body); /* the validator will say it is not the JSON declared */
    cJSON_AddItemToObject(o, "body", body ? body : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "headers", headers_json(a));
    char *line = cJSON_PrintUnformatted(o);
    cr_assert_not_null(line);
    fprintf(R.rec, "%s\n", line);
    fflush(R.rec);
    free(line);
    cJSON_Delete(o);
    R.n_records++;
}

static cJSON *oa_error_of(const http_answer *a)
{
    cJSON *o = http_json(a);
    cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "code");
    cJSON *c = cJSON_IsString(code) ? cJSON_CreateString(code->valuestring) : NULL;
    cJSON_Delete(o);
    return c;
}

/* A recorded request expected to answer want (and, for errors, the code); the answer's
 * parsed JSON (or NULL) is returned, and the answer itself into keep when given. */
static cJSON *oa_call(const oa_daemon *d, const char *method, const char *target, const char *headers,
                      const void *body, size_t len, int want, const char *code, http_answer *keep)
{
    http_answer a;
    oa_send(d, method, target, headers, body, len, &a);
    oa_record(method, target, &a);
    cr_expect_eq(a.status, want, "%s: %s %s answered %d, wanted %d: %.300s", d->name, method, target,
                 a.status, want, a.body);
    if (code) {
        cJSON *c = oa_error_of(&a);
        cr_expect(c && !strcmp(c->valuestring, code), "%s: %s %s: wanted error code %s: %.300s", d->name,
                  method, target, code, a.body);
        cJSON_Delete(c);
    }
    cJSON *o = http_json(&a);
    if (keep)
        *keep = a;
    else
        http_answer_free(&a);
    return o;
}

/* The same, for the caller that only wants the status checked. */
static void oa_check(const oa_daemon *d, const char *method, const char *target, const char *headers,
                     const void *body, size_t len, int want, const char *code)
{
    cJSON_Delete(oa_call(d, method, target, headers, body, len, want, code, NULL));
}

/* A hand-made request, recorded. */
static void oa_check_raw(const oa_daemon *d, const char *method, const char *target, const void *req,
                         size_t n, const void *tail, size_t tail_len, int want, const char *code)
{
    char what[300];
    snprintf(what, sizeof what, "%s: %s %s (raw)", d->name, method, target);
    http_answer a;
    oa_send_raw(d, what, req, n, tail, tail_len, &a);
    oa_record(method, target, &a);
    cr_expect_eq(a.status, want, "%s answered %d, wanted %d: %.300s", what, a.status, want, a.body);
    cJSON *c = oa_error_of(&a);
    cr_expect(c && !strcmp(c->valuestring, code), "%s: wanted error code %s: %.300s", what, code, a.body);
    cJSON_Delete(c);
    http_answer_free(&a);
}

static const char *str_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static int job_state(const char *s)
{
    for (int i = 0; i < JOB_STATES; i++)
        if (!strcmp(s, JOB_STATE_NAMES[i]))
            return i;
    return -1;
}

/* Polls GET /jobs/{id} until the job finished, recording the first answer of each state;
 * the last answer's JSON. */
static cJSON *oa_wait_job(const oa_daemon *d, const char *id)
{
    char target[128];
    snprintf(target, sizeof target, "/jobs/%s", id);
    int seen[JOB_STATES] = {0};
    for (int i = 0; i < JOB_TIMEOUT_S * (1000000 / POLL_US); i++) {
        http_answer a;
        oa_send(d, "GET", target, NULL, NULL, 0, &a);
        cr_assert_eq(a.status, 200, "%s: GET %s: %d %s", d->name, target, a.status, a.body);
        cJSON *o = http_json(&a);
        int st = job_state(str_of(o, "status"));
        cr_assert(st >= 0, "%s: GET %s: status %s", d->name, target, a.body);
        if (!seen[st]) {
            seen[st] = R.job_seen[st] = 1;
            oa_record("GET", target, &a);
        }
        http_answer_free(&a);
        if (st == JOB_SUCCEEDED || st == JOB_FAILED)
            return o;
        cJSON_Delete(o);
        usleep(POLL_US);
    }
    cr_assert_fail("%s: job %s did not finish in %d s (see %s)", d->name, id, JOB_TIMEOUT_S, d->log);
    return NULL;
}

/* One GET /jobs/{id}, recorded; its state is noted. */
static void oa_job_once(const oa_daemon *d, const char *id)
{
    char target[128];
    snprintf(target, sizeof target, "/jobs/%s", id);
    cJSON *o = oa_call(d, "GET", target, NULL, NULL, 0, 200, NULL, NULL);
    int st = job_state(str_of(o, "status"));
    if (st >= 0)
        R.job_seen[st] = 1;
    cJSON_Delete(o);
}

/* Polls GET path until it answers want, recording the last answer. */
static void oa_wait_status(const oa_daemon *d, const char *path, int want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        http_answer a;
        oa_send(d, "GET", path, NULL, NULL, 0, &a);
        int ok = a.status == want;
        if (ok)
            oa_record("GET", path, &a);
        http_answer_free(&a);
        if (ok)
            return;
        usleep(100 * 1000);
    }
    cr_assert_fail("%s: GET %s never answered %d in %d s (see %s)", d->name, path, want, timeout_s, d->log);
}

/* HEAD is not an OpenAPI operation here (GET implies it): checked, not recorded. */
static void oa_head(const oa_daemon *d, const char *target, int want)
{
    http_answer a;
    oa_send(d, "HEAD", target, NULL, NULL, 0, &a);
    cr_expect_eq(a.status, want, "%s: HEAD %s answered %d", d->name, target, a.status);
    cr_expect_eq(a.len, 0, "%s: HEAD %s has a body", d->name, target);
    http_answer_free(&a);
}

/* ---- bodies ---- */

static blob read_blob(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", R.shared, rel);
    blob b;
    b.data = dn_test_read_file(path, &b.len);
    cr_assert_not_null(b.data, "%s", path);
    return b;
}

static char *b64(const void *data, size_t len)
{
    char *s = malloc(dn_base64_encoded_len(len) + 1);
    cr_assert_not_null(s);
    dn_base64_encode(data, len, s);
    return s;
}

/* Prints a cJSON object built by the caller (and deletes it). */
static char *json_body(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cr_assert_not_null(s);
    return s;
}

static void add_b64(cJSON *o, const char *name, blob b)
{
    char *s = b64(b.data, b.len);
    cJSON_AddStringToObject(o, name, s);
    free(s);
}

typedef struct part {
    const char *name, *filename, *type;
    const void *data;
    size_t len;
} part;

static char *multipart(const part *parts, int n, size_t *len)
{
    size_t cap = 1024;
    for (int i = 0; i < n; i++)
        cap += parts[i].len + 512;
    char *m = malloc(cap);
    cr_assert_not_null(m);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        k += (size_t)sprintf(m + k, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", BOUNDARY, parts[i].name);
        if (parts[i].filename)
            k += (size_t)sprintf(m + k, "; filename=\"%s\"", parts[i].filename);
        k += (size_t)sprintf(m + k, "\r\n");
        if (parts[i].type)
            k += (size_t)sprintf(m + k, "Content-Type: %s\r\n", parts[i].type);
        k += (size_t)sprintf(m + k, "\r\n");
        memcpy(m + k, parts[i].data, parts[i].len);
        k += parts[i].len;
        k += (size_t)sprintf(m + k, "\r\n");
    }
    k += (size_t)sprintf(m + k, "--%s--\r\n", BOUNDARY);
    *len = k;
    return m;
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n)
{
    out[0] = (uint8_t)(n >> 24), out[1] = (uint8_t)(n >> 16), out[2] = (uint8_t)(n >> 8), out[3] = (uint8_t)n;
    memcpy(out + 4, type, 4);
    if (n)
        memcpy(out + 8, data, n);
    uint32_t c = crc32_of(out + 4, 4 + (size_t)n);
    uint8_t *t = out + 8 + n;
    t[0] = (uint8_t)(c >> 24), t[1] = (uint8_t)(c >> 16), t[2] = (uint8_t)(c >> 8), t[3] = (uint8_t)c;
    return 12 + (size_t)n;
}

/* A PNG whose header claims w x h pixels (no image data): refused on its size alone. */
static blob huge_png(uint32_t w, uint32_t h)
{
    blob b = {malloc(128), 0};
    memcpy(b.data, "\x89PNG\r\n\x1A\n", 8);
    b.len = 8;
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        8, 2, 0, 0, 0};
    b.len += png_chunk(b.data + b.len, "IHDR", ihdr, 13);
    b.len += png_chunk(b.data + b.len, "IDAT", NULL, 0);
    b.len += png_chunk(b.data + b.len, "IEND", NULL, 0);
    return b;
}

/* A small CMYK (YCCK) JPEG, which the decoder refuses. */
static blob cmyk_jpeg(void)
{
    uint8_t px[16 * 16 * 4];
    memset(px, 100, sizeof px);
    tjhandle tj = tjInitCompress();
    cr_assert_not_null(tj);
    unsigned char *jpeg = NULL;
    unsigned long n = 0;
    cr_assert_eq(tjCompress2(tj, px, 16, 0, 16, TJPF_CMYK, &jpeg, &n, TJSAMP_444, 90, 0), 0, "%s",
                 tjGetErrorStr2(tj));
    blob b = {malloc(n), n};
    memcpy(b.data, jpeg, n);
    tjFree(jpeg);
    tjDestroy(tj);
    return b;
}

/* ---- the test ---- */

static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        char full[4200];
        snprintf(full, sizeof full, "%.*s/%s", (int)(n ? n : 1), n ? path : ".", prog);
        if (access(full, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* node tools/openapi/validate.mjs openapi.yaml RECORDS; its exit status (output in R.out). */
static int run_validator(void)
{
    char *argv[] = {"node", "tools/openapi/validate.mjs", "openapi.yaml", R.records, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, R.out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return -1;
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The trained daemon: jobs through their states, scoring in every encoding, the request
 * errors, unmatched routes, rollback, and a retrain the recall gate refuses. */
static void drive_main(const oa_daemon *d)
{
    oa_check(d, "GET", "/healthz", NULL, NULL, 0, 200, NULL);
    /* the first model is training: not ready yet (unless it was quicker than us) */
    {
        http_answer a;
        oa_send(d, "GET", "/readyz", NULL, NULL, 0, &a);
        oa_record("GET", "/readyz", &a);
        cr_expect(a.status == 200 || a.status == 503, "main: GET /readyz answered %d", a.status);
        http_answer_free(&a);
    }
    cJSON *job = oa_wait_job(d, "job-000001");
    cr_assert_str_eq(str_of(job, "status"), "succeeded", "the first model: %s (see %s)",
                     cJSON_PrintUnformatted(job), d->log);
    cJSON_Delete(job);
    oa_wait_status(d, "/readyz", 200, READY_TIMEOUT_S);
    oa_wait_status(d, "/v2/health/ready", 200, READY_TIMEOUT_S);

    /* a labelled anomaly: a retrain, queued (debounce), running, succeeded -> version 2 */
    blob bad0 = read_blob("data/mvtec_bottle/test/broken_large/000.png");
    cJSON *fb = oa_call(d, "POST", "/feedback?label=anomaly", CT_PNG "X-Request-ID: oa-fb-1\r\n", bad0.data,
                        bad0.len, 202, NULL, NULL);
    cJSON *rt = cJSON_GetObjectItem(fb, "retrain");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(rt, "job_id")), "%s", cJSON_PrintUnformatted(fb));
    char job2[32];
    snprintf(job2, sizeof job2, "%s", str_of(rt, "job_id"));
    cr_expect_str_eq(str_of(rt, "status"), "queued");
    cJSON_Delete(fb);
    job = oa_wait_job(d, job2);
    cr_assert_str_eq(str_of(job, "status"), "succeeded", "%s", cJSON_PrintUnformatted(job));
    cr_expect_eq(num_of(job, "model_version"), 2);
    cJSON_Delete(job);
    /* the same image again: a duplicate, nothing scheduled */
    fb = oa_call(d, "POST", "/feedback?label=anomaly", CT_PNG, bad0.data, bad0.len, 202, NULL, NULL);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(fb, "duplicate")));
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(fb, "retrain"), "job_id")));
    cr_expect_str_eq(str_of(cJSON_GetObjectItem(fb, "retrain"), "status"), "not_scheduled");
    cJSON_Delete(fb);
    cJSON *o = oa_call(d, "GET", "/readyz", NULL, NULL, 0, 200, NULL, NULL);
    cr_expect_eq(num_of(o, "model_version"), 2);
    cJSON_Delete(o);

    /* ---- 200 /score ---- */
    blob good0 = read_blob("data/mvtec_bottle/test/good/000.png");
    blob jpeg = read_blob("images/eagle.jpg");
    o = oa_call(d, "POST", "/score", CT_PNG "X-Request-ID: oa-score-1\r\n", bad0.data, bad0.len, 200, NULL, NULL);
    cr_expect_str_eq(str_of(o, "request_id"), "oa-score-1");
    cr_expect_null(cJSON_GetObjectItem(o, "heatmap"));
    cJSON_Delete(o);
    o = oa_call(d, "POST", "/score?heatmap=png", CT_PNG, bad0.data, bad0.len, 200, NULL, NULL);
    cr_expect_not_null(cJSON_GetObjectItem(o, "heatmap"));
    cJSON_Delete(o);
    oa_check(d, "POST", "/score?heatmap=none", "Content-Type: image/jpeg\r\nX-Request-ID: not a valid id!\r\n",
             jpeg.data, jpeg.len, 200, NULL);
    size_t n;
    part one[] = {{"image", "a.png", "image/png", good0.data, good0.len}};
    char *mp = multipart(one, 1, &n);
    o = oa_call(d, "POST", "/score", CT_MULTIPART, mp, n, 200, NULL, NULL);
    cr_expect_null(cJSON_GetObjectItem(o, "results"), "one image part: one ScoreResult");
    cJSON_Delete(o);
    free(mp);
    part two[] = {{"image", "a.png", "image/png", good0.data, good0.len},
                  {"image", "b.jpg", "image/jpeg", jpeg.data, jpeg.len}};
    mp = multipart(two, 2, &n);
    o = oa_call(d, "POST", "/score?heatmap=png", CT_MULTIPART "X-Request-ID: oa-batch:2\r\n", mp, n, 200, NULL, NULL);
    cJSON *res = cJSON_GetObjectItem(o, "results");
    cr_expect_eq(cJSON_GetArraySize(res), 2);
    cr_expect_not_null(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "heatmap"));
    cr_expect_str_eq(str_of(cJSON_GetArrayItem(res, 1), "request_id"), "oa-batch:2");
    cJSON_Delete(o);
    free(mp);
    cJSON *js = cJSON_CreateObject();
    add_b64(js, "image", good0);
    char *body = json_body(js);
    oa_check(d, "POST", "/score", CT_JSON, body, strlen(body), 200, NULL);
    free(body);
    char *g64 = b64(good0.data, good0.len), *url = malloc(strlen(g64) + 64);
    sprintf(url, "data:image/png;base64,%s", g64);
    js = cJSON_CreateObject();
    cJSON_AddStringToObject(js, "image", url);
    body = json_body(js);
    oa_check(d, "POST", "/score?heatmap=png", CT_JSON, body, strlen(body), 200, NULL);
    free(body);
    js = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(js, "images");
    cJSON_AddItemToArray(arr, cJSON_CreateString(g64));
    body = json_body(js);
    o = oa_call(d, "POST", "/score", CT_JSON, body, strlen(body), 200, NULL, NULL);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "results")), 1, "a batch of one is a batch");
    cJSON_Delete(o);
    free(body);
    js = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(js, "images");
    cJSON_AddItemToArray(arr, cJSON_CreateString(g64));
    cJSON_AddItemToArray(arr, cJSON_CreateString(url));
    body = json_body(js);
    oa_check(d, "POST", "/score", CT_JSON, body, strlen(body), 200, NULL);
    free(body);
    free(url);

    /* ---- /score errors ---- */
    oa_check(d, "POST", "/score", CT_JSON, LIT("{\"image\": "), 400, "invalid_json");
    oa_check(d, "POST", "/score", CT_JSON, LIT("{\"image\": 5}"), 400, "invalid_json");
    oa_check(d, "POST", "/score", CT_JSON, LIT("[1]"), 400, "invalid_json");
    oa_check(d, "POST", "/score", "Content-Type: multipart/form-data\r\n", LIT("x"), 400, "invalid_multipart");
    oa_check(d, "POST", "/score", CT_MULTIPART, LIT("no delimiter here"), 400, "invalid_multipart");
    oa_check(d, "POST", "/score", CT_JSON, LIT("{\"image\": \"@@@@\"}"), 400, "invalid_base64");
    oa_check(d, "POST", "/score", CT_PNG, NULL, 0, 400, "empty_body");
    oa_check(d, "POST", "/score", CT_JSON, LIT("{}"), 400, "missing_image");
    oa_check(d, "POST", "/score", CT_JSON, LIT("{\"images\": []}"), 400, "missing_image");
    part label_only[] = {{"label", NULL, NULL, "anomaly", 7}};
    mp = multipart(label_only, 1, &n);
    oa_check(d, "POST", "/score", CT_MULTIPART, mp, n, 400, "missing_image");
    free(mp);
    oa_check(d, "POST", "/score", CT_JSON, LIT("{\"image\": \"\"}"), 400, "empty_image");
    part empty_part[] = {{"image", "a.png", "image/png", "", 0}};
    mp = multipart(empty_part, 1, &n);
    oa_check(d, "POST", "/score", CT_MULTIPART, mp, n, 400, "empty_image");
    free(mp);
    oa_check(d, "POST", "/score?heatmap=jpeg", CT_PNG, good0.data, good0.len, 400, "invalid_parameter");
    const char *huge_head = "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                            "Content-Type: image/png\r\nContent-Length: 100000000000\r\n\r\n";
    oa_check_raw(d, "POST", "/score", huge_head, strlen(huge_head), NULL, 0, 413, "payload_too_large");
    js = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(js, "images");
    for (int i = 0; i < 17; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(g64));
    body = json_body(js);
    oa_check(d, "POST", "/score", CT_JSON, body, strlen(body), 413, "batch_too_large");
    free(body);
    free(g64);
    blob huge = huge_png(10000, 10000);
    oa_check(d, "POST", "/score", CT_PNG, huge.data, huge.len, 413, "image_too_large");
    oa_check(d, "POST", "/score", "Content-Type: text/plain\r\n", LIT("hello"), 415, "unsupported_media_type");
    oa_check(d, "POST", "/score", "Content-Type: image/gif\r\n", LIT("GIF89a"), 415, "unsupported_media_type");
    oa_check(d, "POST", "/score", NULL, LIT("hello"), 415, "unsupported_media_type");
    oa_check(d, "POST", "/score", CT_PNG, good0.data, 2000, 422, "invalid_image");
    oa_check(d, "POST", "/score", CT_PNG, LIT("definitely not an image"), 422, "invalid_image");
    blob cmyk = cmyk_jpeg();
    oa_check(d, "POST", "/score", "Content-Type: image/jpeg\r\n", cmyk.data, cmyk.len, 422, "unsupported_image");

    /* ---- unmatched routes, the light endpoints, HEAD ---- */
    oa_check(d, "GET", "/nope", NULL, NULL, 0, 404, "not_found");
    oa_check(d, "GET", "/jobs/", NULL, NULL, 0, 404, "not_found");
    oa_check(d, "GET", "/jobs/a/b", NULL, NULL, 0, 404, "not_found");
    oa_check(d, "POST", "/score/extra", CT_PNG, good0.data, good0.len, 404, "not_found");
    oa_check(d, "GET", "/jobs/job-999999", NULL, NULL, 0, 404, "unknown_job");
    http_answer a;
    cJSON_Delete(oa_call(d, "GET", "/score", NULL, NULL, 0, 405, "method_not_allowed", &a));
    char allow[64] = "";
    cr_expect_eq(http_header(&a, "Allow", allow, sizeof allow), 0);
    cr_expect_str_eq(allow, "POST");
    http_answer_free(&a);
    oa_check(d, "GET", "/feedback", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "GET", "/model/rollback", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "POST", "/healthz", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "DELETE", "/model", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "PUT", "/jobs/job-000001", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "POST", "/metrics", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "POST", "/v2/health/ready", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "POST", "/", NULL, NULL, 0, 405, "method_not_allowed");
    oa_check(d, "GET", "/", NULL, NULL, 0, 200, NULL);
    oa_check(d, "GET", "/v2/health/live", NULL, NULL, 0, 200, NULL);
    oa_head(d, "/healthz", 200);
    oa_head(d, "/model", 200);
    oa_head(d, "/jobs/job-000001", 200);
    oa_head(d, "/score", 405);
    oa_head(d, "/nope", 404);

    /* ---- /model, rollback ---- */
    o = oa_call(d, "GET", "/model", NULL, NULL, 0, 200, NULL, NULL);
    cr_expect_eq(num_of(o, "version"), 2);
    cJSON *versions = cJSON_GetObjectItem(o, "versions");
    cr_expect_eq(cJSON_GetArraySize(versions), 2);
    /* what the validator cannot see: the order (newest first) and the bare file names */
    cr_expect_eq(num_of(cJSON_GetArrayItem(versions, 0), "version"), 2, "newest first");
    cr_expect_str_eq(str_of(cJSON_GetArrayItem(versions, 0), "file"), "model-000002.safetensors");
    cJSON_Delete(o);
    o = oa_call(d, "POST", "/model/rollback", NULL, NULL, 0, 200, NULL, NULL);
    cr_expect_eq(num_of(o, "from"), 2);
    cr_expect_eq(num_of(o, "to"), 1);
    cJSON_Delete(o);
    oa_check(d, "POST", "/model/rollback", NULL, NULL, 0, 422, "no_older_version");
    o = oa_call(d, "GET", "/model", NULL, NULL, 0, 200, NULL, NULL);
    cr_expect_eq(num_of(o, "version"), 1);
    cJSON_Delete(o);

    /* ---- a retrain the recall gate refuses: the only labelled anomaly is a normal image
     * (the broken bottle is relabelled normal) ---- */
    fb = oa_call(d, "POST", "/feedback?label=normal", CT_PNG, bad0.data, bad0.len, 202, NULL, NULL);
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(fb, "duplicate")), "relabelled, not a duplicate");
    cr_expect_str_eq(str_of(fb, "label"), "normal");
    cJSON_Delete(fb);
    fb = oa_call(d, "POST", "/feedback?label=anomaly", CT_PNG, good0.data, good0.len, 202, NULL, NULL);
    char job3[32];
    snprintf(job3, sizeof job3, "%s", str_of(cJSON_GetObjectItem(fb, "retrain"), "job_id"));
    cJSON_Delete(fb);
    job = oa_wait_job(d, job3);
    cr_expect_str_eq(str_of(job, "status"), "failed", "%s", cJSON_PrintUnformatted(job));
    cr_expect(cJSON_IsString(cJSON_GetObjectItem(job, "reason")));
    cJSON_Delete(job);
    o = oa_call(d, "GET", "/v2/health/ready", NULL, NULL, 0, 200, NULL, NULL);
    cr_expect_eq(num_of(o, "model_version"), 1, "the refused model is not live");
    cJSON_Delete(o);
    oa_check(d, "GET", "/metrics", NULL, NULL, 0, 200, NULL);

    free(bad0.data);
    free(good0.data);
    free(jpeg.data);
    free(huge.data);
    free(cmyk.data);
}

/* No training data and an API key: not ready, no model, a failed first job, 401s, and
 * feedback in every encoding with its errors. */
static void drive_empty(const oa_daemon *d)
{
    oa_check(d, "GET", "/healthz", NULL, NULL, 0, 200, NULL);
    oa_check(d, "GET", "/v2/health/live", NULL, NULL, 0, 200, NULL);
    cJSON *job = oa_wait_job(d, "job-000001");
    cr_expect_str_eq(str_of(job, "status"), "failed", "no normal images: %s", cJSON_PrintUnformatted(job));
    cJSON_Delete(job);
    oa_check(d, "GET", "/readyz", NULL, NULL, 0, 503, "not_ready");
    oa_check(d, "GET", "/v2/health/ready", NULL, NULL, 0, 503, "not_ready");
    http_answer a;
    char retry[16];
    cJSON_Delete(oa_call(d, "GET", "/model", NULL, NULL, 0, 503, "no_model", &a));
    cr_expect_eq(http_header(&a, "Retry-After", retry, sizeof retry), 0);
    http_answer_free(&a);
    blob good1 = read_blob("data/mvtec_bottle/test/good/001.png");
    cJSON_Delete(oa_call(d, "POST", "/score", CT_PNG, good1.data, good1.len, 503, "no_model", &a));
    cr_expect_eq(http_header(&a, "Retry-After", retry, sizeof retry), 0);
    http_answer_free(&a);
    oa_check(d, "GET", "/jobs/job-000077", NULL, NULL, 0, 404, "unknown_job");
    oa_check(d, "GET", "/metrics", NULL, NULL, 0, 200, NULL);

    /* ---- 401 ---- */
    cJSON_Delete(oa_call(d, "POST", "/feedback?label=normal", CT_PNG, good1.data, good1.len, 401, "unauthorized", &a));
    char challenge[64] = "";
    cr_expect_eq(http_header(&a, "WWW-Authenticate", challenge, sizeof challenge), 0);
    http_answer_free(&a);
    oa_check(d, "POST", "/feedback?label=normal", CT_PNG "Authorization: Bearer wrong\r\n", good1.data, good1.len,
             401, "unauthorized");
    oa_check(d, "POST", "/model/rollback", NULL, NULL, 0, 401, "unauthorized");
    oa_check(d, "POST", "/model/rollback", "Authorization: Basic b2E6b2E=\r\n", NULL, 0, 401, "unauthorized");
    oa_check(d, "POST", "/model/rollback", AUTH, NULL, 0, 422, "no_older_version");

    /* ---- 202 in every encoding ---- */
    blob bad1 = read_blob("data/mvtec_bottle/test/broken_large/001.png");
    blob mask1 = read_blob("data/mvtec_bottle/ground_truth/broken_large/001_mask.png");
    blob bad2 = read_blob("data/mvtec_bottle/test/broken_large/002.png");
    blob mask2 = read_blob("data/mvtec_bottle/ground_truth/broken_large/002_mask.png");
    blob good2 = read_blob("data/mvtec_bottle/test/good/002.png");
    blob cat = read_blob("images/cat.png");
    size_t n;
    part with_mask[] = {{"image", "b1.png", "image/png", bad1.data, bad1.len},
                        {"label", NULL, NULL, "anomaly", 7},
                        {"mask", "m1.png", "image/png", mask1.data, mask1.len}};
    char *mp = multipart(with_mask, 3, &n);
    cJSON *fb = oa_call(d, "POST", "/feedback", CT_MULTIPART AUTH, mp, n, 202, NULL, NULL);
    cJSON *rt = cJSON_GetObjectItem(fb, "retrain");
    cr_expect_str_eq(str_of(rt, "status"), "queued");
    char job2[32];
    snprintf(job2, sizeof job2, "%s", str_of(rt, "job_id"));
    cJSON_Delete(fb);
    oa_job_once(d, job2); /* a long debounce here: it stays queued */
    fb = oa_call(d, "POST", "/feedback", CT_MULTIPART AUTH, mp, n, 202, NULL, NULL);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(fb, "duplicate")));
    cJSON_Delete(fb);
    free(mp);
    cJSON *js = cJSON_CreateObject();
    add_b64(js, "image", bad2);
    cJSON_AddStringToObject(js, "label", "anomaly");
    add_b64(js, "mask", mask2);
    char *body = json_body(js);
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, body, strlen(body), 202, NULL);
    free(body);
    js = cJSON_CreateObject();
    add_b64(js, "image", good2);
    cJSON_AddStringToObject(js, "label", "normal");
    cJSON_AddNullToObject(js, "mask");
    body = json_body(js);
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, body, strlen(body), 202, NULL);
    free(body);
    /* the query label stands in for a body without one */
    part no_label[] = {{"image", "g1.png", "image/png", good1.data, good1.len}};
    mp = multipart(no_label, 1, &n);
    fb = oa_call(d, "POST", "/feedback?label=normal", CT_MULTIPART AUTH, mp, n, 202, NULL, NULL);
    cr_expect_str_eq(str_of(fb, "label"), "normal");
    cJSON_Delete(fb);
    free(mp);
    oa_job_once(d, job2);

    /* ---- /feedback errors ---- */
    oa_check(d, "POST", "/feedback", CT_PNG AUTH, good1.data, good1.len, 400, "invalid_label");
    oa_check(d, "POST", "/feedback?label=broken", CT_PNG AUTH, good1.data, good1.len, 400, "invalid_label");
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, LIT("{\"image\": \"iVBORw0KGgo=\", \"label\": \"maybe\"}"), 400,
             "invalid_label");
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, LIT("{\"image\": \"iVBORw0KGgo=\", \"label\": 5}"), 400,
             "invalid_json");
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, LIT("{\"image\""), 400, "invalid_json");
    part two_images[] = {{"image", "a.png", "image/png", good1.data, good1.len},
                         {"image", "b.png", "image/png", good2.data, good2.len},
                         {"label", NULL, NULL, "normal", 6}};
    mp = multipart(two_images, 3, &n);
    oa_check(d, "POST", "/feedback", CT_MULTIPART AUTH, mp, n, 400, "one_image");
    free(mp);
    part two_labels[] = {{"image", "a.png", "image/png", good1.data, good1.len},
                         {"label", NULL, NULL, "normal", 6},
                         {"label", NULL, NULL, "anomaly", 7}};
    mp = multipart(two_labels, 3, &n);
    oa_check(d, "POST", "/feedback", CT_MULTIPART AUTH, mp, n, 400, "invalid_multipart");
    free(mp);
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, LIT("{\"image\": \"%%%\", \"label\": \"normal\"}"), 400,
             "invalid_base64");
    oa_check(d, "POST", "/feedback?label=normal", CT_PNG AUTH, NULL, 0, 400, "empty_body");
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, LIT("{\"label\": \"normal\"}"), 400, "missing_image");
    part empty_image[] = {{"image", "a.png", "image/png", "", 0}, {"label", NULL, NULL, "normal", 6}};
    mp = multipart(empty_image, 2, &n);
    oa_check(d, "POST", "/feedback", CT_MULTIPART AUTH, mp, n, 400, "empty_image");
    free(mp);
    blob huge = huge_png(10000, 10000);
    oa_check(d, "POST", "/feedback?label=normal", CT_PNG AUTH, huge.data, huge.len, 413, "image_too_large");
    part huge_mask[] = {{"image", "b1.png", "image/png", bad1.data, bad1.len},
                        {"label", NULL, NULL, "anomaly", 7},
                        {"mask", "m.png", "image/png", huge.data, huge.len}};
    mp = multipart(huge_mask, 3, &n);
    oa_check(d, "POST", "/feedback", CT_MULTIPART AUTH, mp, n, 413, "invalid_mask");
    free(mp);
    /* over max_body_bytes (1M here) without a declared length: read, dropped, refused */
    size_t big = (1u << 20) + 4096;
    char *chunk = calloc(1, big + 64);
    int k = sprintf(chunk, "%zx\r\n", big);
    memcpy(chunk + k + big, "\r\n0\r\n\r\n", 7);
    const char *chunked_head = "POST /feedback?label=normal HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                               "Content-Type: image/png\r\n" AUTH "Transfer-Encoding: chunked\r\n\r\n";
    oa_check_raw(d, "POST", "/feedback", chunked_head, strlen(chunked_head), chunk, (size_t)k + big + 7, 413,
                 "payload_too_large");
    free(chunk);
    oa_check(d, "POST", "/feedback?label=normal", "Content-Type: text/plain\r\n" AUTH, LIT("hello"), 415,
             "unsupported_media_type");
    oa_check(d, "POST", "/feedback?label=anomaly", CT_PNG AUTH, LIT("not a png"), 422, "invalid_image");
    blob cmyk = cmyk_jpeg();
    oa_check(d, "POST", "/feedback?label=anomaly", "Content-Type: image/jpeg\r\n" AUTH, cmyk.data, cmyk.len, 422,
             "unsupported_image");
    js = cJSON_CreateObject();
    add_b64(js, "image", bad1);
    cJSON_AddStringToObject(js, "label", "anomaly");
    cJSON_AddStringToObject(js, "mask", "bm90IGEgbWFzaw==");
    body = json_body(js);
    oa_check(d, "POST", "/feedback", CT_JSON AUTH, body, strlen(body), 422, "invalid_mask");
    free(body);
    part mismatch[] = {{"image", "b1.png", "image/png", bad1.data, bad1.len},
                       {"label", NULL, NULL, "anomaly", 7},
                       {"mask", "cat.png", "image/png", cat.data, cat.len}};
    mp = multipart(mismatch, 3, &n);
    oa_check(d, "POST", "/feedback", CT_MULTIPART AUTH, mp, n, 422, "mask_size_mismatch");
    free(mp);

    free(good1.data);
    free(good2.data);
    free(bad1.data);
    free(bad2.data);
    free(mask1.data);
    free(mask2.data);
    free(cat.data);
    free(huge.data);
    free(cmyk.data);
}

/* Beyond loopback without a key: writes refused. */
static void drive_open(const oa_daemon *d)
{
    oa_check(d, "GET", "/healthz", NULL, NULL, 0, 200, NULL);
    oa_check(d, "POST", "/feedback?label=normal", CT_PNG, LIT("x"), 403, "writes_disabled");
    oa_check(d, "POST", "/model/rollback", NULL, NULL, 0, 403, "writes_disabled");
}

TestSuite(openapi, .timeout = 900);

Test(openapi, live_answers_match_the_spec, .fini = oa_fini)
{
    memset(&R, 0, sizeof R);
    DN_REQUIRE_SHARED(shared);
    DN_REQUIRE_BACKBONE(backbone);
    if (!on_path("node"))
        cr_skip_test("node is not on PATH: cannot run tools/openapi/validate.mjs");
    struct stat st;
    if (stat("tools/openapi/node_modules", &st) || !S_ISDIR(st.st_mode))
        cr_skip_test("tools/openapi/node_modules is missing: run npm --prefix tools/openapi ci");
    cr_assert_eq(access("openapi.yaml", R_OK), 0, "run from the repository root (openapi.yaml not found)");
    cr_assert_eq(access("tools/openapi/validate.mjs", R_OK), 0);
    R.shared = shared;
    dn_test_mkdtemp(R.dir, "openapi-");
    snprintf(R.records, sizeof R.records, "%s/records.jsonl", R.dir);
    snprintf(R.out, sizeof R.out, "%s/validate.out", R.dir);
    R.rec = fopen(R.records, "w");
    cr_assert_not_null(R.rec);
    link_train_images();

    oa_daemon_paths(&R.main, "main");
    oa_daemon_paths(&R.empty, "empty");
    oa_daemon_paths(&R.open, "open");
    char *main_args[] = {"--listen", "127.0.0.1:0", "--data-dir", R.main.data, "--train-data", R.train,
                         "--backbone", (char *)backbone, "--workers", "2",
                         "--set", "retrain_max_fpr=1", "--set", "retrain_debounce_ms=100",
                         "--set", "retrain_budget_s=600", "--set", "watch_interval_ms=200", NULL};
    /* a debounce longer than the test: its feedback jobs stay queued */
    char *empty_args[] = {"--listen", "127.0.0.1:0", "--data-dir", R.empty.data, "--train-data", "",
                          "--backbone", (char *)backbone, "--workers", "1", "--api-key", API_KEY,
                          "--set", "max_body_bytes=1M", "--set", "retrain_debounce_ms=3600000", NULL};
    char *open_args[] = {"--listen", "0.0.0.0:0", "--data-dir", R.open.data, "--train-data", "",
                         "--backbone", (char *)backbone, "--workers", "1", NULL};
    cr_assert_eq(oa_start(&R.main, main_args), 0, "devnetd did not start; see %s", R.main.log);
    cr_assert_eq(oa_start(&R.empty, empty_args), 0, "devnetd did not start; see %s", R.empty.log);
    cr_assert_eq(oa_start(&R.open, open_args), 0, "devnetd did not start; see %s", R.open.log);

    drive_main(&R.main);
    drive_empty(&R.empty);
    drive_open(&R.open);
    for (int i = 0; i < JOB_STATES; i++)
        cr_expect(R.job_seen[i], "no job was seen %s", JOB_STATE_NAMES[i]);
    cr_expect_eq(oa_stop(&R.main), 0, "devnetd (main) did not exit 0 on SIGTERM; see %s", R.main.log);
    cr_expect_eq(oa_stop(&R.empty), 0, "devnetd (empty) did not exit 0 on SIGTERM; see %s", R.empty.log);
    cr_expect_eq(oa_stop(&R.open), 0, "devnetd (open) did not exit 0 on SIGTERM; see %s", R.open.log);
    fclose(R.rec);
    R.rec = NULL;

    int rc = run_validator();
    size_t len = 0;
    char *text = (char *)dn_test_read_file(R.out, &len);
    if (rc != 0)
        fprintf(stderr, "openapi: node tools/openapi/validate.mjs openapi.yaml %s exited %d:\n%s\n", R.records, rc,
                text ? text : "(no output)");
    cr_expect_eq(rc, 0, "%d recorded answers do not all match openapi.yaml (exit %d):\n%.6000s", R.n_records, rc,
                 text ? text : "(no output)");
    free(text);
    R.passed = rc == 0;
}
