/* Integration tests of the service: devnetd runs as a separate process on a free loopback
 * port with its own data dir; its first model is trained from 60 bottle images. */
#include "test_http.h"

#include "dn_base64.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>

#define TRAIN_IMAGES 60
#define READY_TIMEOUT_S 120

typedef struct fixture {
    char dir[64];
    char data[128], train[128], log[128], conf[128];
    const char *shared;
    devnetd_proc d;
} fixture;

static void link_train_images(fixture *f)
{
    snprintf(f->train, sizeof f->train, "%s/train", f->dir);
    cr_assert_eq(mkdir(f->train, 0755), 0);
    char shared[4096];
    cr_assert_not_null(realpath(f->shared, shared)); /* the links live elsewhere */
    for (int i = 0; i < TRAIN_IMAGES; i++) {
        char src[4200], dst[256];
        snprintf(src, sizeof src, "%s/data/mvtec_bottle/train/good/%03d.png", shared, i);
        snprintf(dst, sizeof dst, "%s/%03d.png", f->train, i);
        cr_assert_eq(symlink(src, dst), 0, "symlink %s", src);
    }
}

/* Extra arguments come after the fixture's own (later flags win). 60 training images
 * leave 6 held out, too few to hold a new model to a 5 % false-positive bound: the tests
 * of the swap gate set their own bounds. */
static int fixture_spawn(fixture *f, char *const *extra)
{
    char *args[48] = {"--listen", "127.0.0.1:0", "--data-dir", f->data, "--train-data", f->train,
                      "--backbone", (char *)dn_test_backbone(), "--workers", "2",
                      "--set", "retrain_debounce_ms=100", "--set", "watch_interval_ms=200",
                      "--set", "retrain_max_fpr=1"};
    int n = 16;
    for (int i = 0; extra && extra[i] && n < 46; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return devnetd_start(&f->d, f->log, args);
}

static void fixture_init(fixture *f, char *const *extra, int wait_ready)
{
    memset(f, 0, sizeof *f);
    f->shared = dn_test_shared();
    dn_test_mkdtemp(f->dir, "devnetd-");
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    snprintf(f->log, sizeof f->log, "%s/devnetd.log", f->dir);
    snprintf(f->conf, sizeof f->conf, "%s/devnetd.conf", f->dir);
    link_train_images(f);
    cr_assert_eq(fixture_spawn(f, extra), 0, "devnetd did not start; see %s", f->log);
    if (wait_ready)
        cr_assert_eq(http_wait_status(f->d.port, "/readyz", 200, READY_TIMEOUT_S), 0,
                     "devnetd never became ready; see %s", f->log);
}

/* Under `make asan` the daemon is a sanitizer build: its reports land in its log. */
static void expect_clean_log(const char *log)
{
    size_t n = 0;
    char *text = (char *)dn_test_read_file(log, &n);
    if (!text)
        return;
    cr_expect(!strstr(text, "Sanitizer") && !strstr(text, "runtime error"), "sanitizer report in %s", log);
    free(text);
}

static void fixture_fini(fixture *f)
{
    if (f->d.pid > 0)
        cr_expect_eq(devnetd_stop(&f->d, SIGTERM), 0, "devnetd did not exit 0 on SIGTERM");
    expect_clean_log(f->log);
    dn_test_rmtree(f->dir);
}

#define REQUIRE_SERVICE_INPUTS()                                                         \
    DN_REQUIRE_SHARED(shared_dir);                                                        \
    DN_REQUIRE_BACKBONE(backbone_path);                                                   \
    (void)shared_dir;                                                                     \
    (void)backbone_path

static uint8_t *read_image(const fixture *f, const char *rel, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data/mvtec_bottle/%s", f->shared, rel);
    uint8_t *b = dn_test_read_file(path, len);
    cr_assert_not_null(b, "%s", path);
    return b;
}

static int post(const fixture *f, const char *path, const char *headers, const void *body, size_t len,
                http_answer *a)
{
    return http_request(f->d.port, "POST", path, headers, body, len, a);
}

static cJSON *expect_json(const http_answer *a, int status)
{
    cr_assert_eq(a->status, status, "status %d (wanted %d): %s", a->status, status, a->body);
    cJSON *o = http_json(a);
    cr_assert_not_null(o, "not JSON: %s", a->body);
    return o;
}

static void expect_error(const http_answer *a, int status, const char *code)
{
    cJSON *o = expect_json(a, status);
    cJSON *e = cJSON_GetObjectItem(o, "error");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(e, "code")), "no error.code: %s", a->body);
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(e, "message")), "no error.message: %s", a->body);
    cr_expect_str_eq(cJSON_GetObjectItem(e, "code")->valuestring, code, "%s", a->body);
    cJSON_Delete(o);
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    cr_assert(cJSON_IsNumber(v), "no number %s", name);
    return v->valuedouble;
}

TestSuite(devnetd, .timeout = 600);

Test(devnetd, health_ready_model_and_metrics)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    fixture_init(&f, NULL, 1);
    http_answer a;
    const char *gets[] = {"/healthz", "/v2/health/live", "/readyz", "/v2/health/ready"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(http_request(f.d.port, "GET", gets[i], NULL, NULL, 0, &a), 0);
        cJSON *o = expect_json(&a, 200);
        cr_expect(cJSON_IsString(cJSON_GetObjectItem(o, "status")));
        cJSON_Delete(o);
        http_answer_free(&a);
    }
    cr_assert_eq(http_request(f.d.port, "GET", "/model", NULL, NULL, 0, &a), 0);
    cJSON *o = expect_json(&a, 200);
    cr_expect_eq(num(o, "version"), 1);
    cJSON *model = cJSON_GetObjectItem(o, "model");
    cr_expect_str_eq(cJSON_GetObjectItem(model, "head_type")->valuestring, "normality",
                     "no labelled anomalies yet: the normality branch alone");
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "versions")), 1);
    cJSON_Delete(o);
    http_answer_free(&a);
    cr_assert_eq(http_request(f.d.port, "GET", "/metrics", NULL, NULL, 0, &a), 0);
    cr_expect_eq(a.status, 200);
    cr_expect(strstr(a.body, "devnet_requests_total{endpoint=\"/model\",status=\"200\"} 1") != NULL, "%s", a.body);
    cr_expect(strstr(a.body, "devnet_model_version 1") != NULL);
    http_answer_free(&a);
    /* the job is counted when it ends, a moment after its model went live */
    int counted = 0;
    for (int i = 0; i < 100 && !counted; i++) {
        cr_assert_eq(http_request(f.d.port, "GET", "/metrics", NULL, NULL, 0, &a), 0);
        counted = strstr(a.body, "devnet_retrain_runs_total{outcome=\"succeeded\"} 1") != NULL;
        http_answer_free(&a);
        if (!counted)
            usleep(100 * 1000);
    }
    cr_expect(counted, "the first model's training run was never counted");
    fixture_fini(&f);
}

Test(devnetd, scores_raw_multipart_and_json_with_heatmap)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    fixture_init(&f, NULL, 1);
    size_t n_bad, n_good;
    uint8_t *bad = read_image(&f, "test/broken_large/000.png", &n_bad);
    uint8_t *good = read_image(&f, "test/good/000.png", &n_good);
    http_answer a;
    cr_assert_eq(post(&f, "/score?heatmap=png", "Content-Type: image/png\r\nX-Request-ID: abc-123\r\n", bad, n_bad, &a), 0);
    cJSON *o = expect_json(&a, 200);
    char rid[128];
    cr_assert_eq(http_header(&a, "X-Request-ID", rid, sizeof rid), 0);
    cr_expect_str_eq(rid, "abc-123");
    cr_expect_str_eq(cJSON_GetObjectItem(o, "request_id")->valuestring, "abc-123");
    double bad_score = num(o, "score");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(o, "is_anomaly")), "a broken bottle: %s", a.body);
    cJSON *hm = cJSON_GetObjectItem(o, "heatmap");
    cr_assert_not_null(hm);
    cr_expect_eq(num(hm, "width"), 448);
    cr_expect_eq(strncmp(cJSON_GetObjectItem(hm, "data")->valuestring, "iVBORw0KGgo", 11), 0, "base64 of a PNG");
    cJSON *ps = cJSON_GetObjectItem(o, "patch_scores");
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ps, "values")), num(ps, "rows") * num(ps, "cols"));
    cJSON_Delete(o);
    http_answer_free(&a);

    /* multipart batch: two images, answered in order */
    const char *bd = "XyZbOuNdArY";
    size_t cap = n_bad + n_good + 1024, n = 0;
    char *mp = malloc(cap);
    const uint8_t *imgs[2] = {good, bad};
    size_t lens[2] = {n_good, n_bad};
    for (int i = 0; i < 2; i++) {
        n += (size_t)sprintf(mp + n, "--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n", bd);
        memcpy(mp + n, imgs[i], lens[i]);
        n += lens[i];
        n += (size_t)sprintf(mp + n, "\r\n");
    }
    n += (size_t)sprintf(mp + n, "--%s--\r\n", bd);
    cr_assert_eq(post(&f, "/score", "Content-Type: multipart/form-data; boundary=XyZbOuNdArY\r\n", mp, n, &a), 0);
    o = expect_json(&a, 200);
    cJSON *res = cJSON_GetObjectItem(o, "results");
    cr_assert_eq(cJSON_GetArraySize(res), 2);
    cr_expect_lt(num(cJSON_GetArrayItem(res, 0), "score"), num(cJSON_GetArrayItem(res, 1), "score"));
    cr_expect_float_eq(num(cJSON_GetArrayItem(res, 1), "score"), bad_score, 1e-3, "same image, same score");
    cJSON_Delete(o);
    http_answer_free(&a);
    free(mp);

    /* JSON with base64 */
    char *b64 = malloc(dn_base64_encoded_len(n_good) + 1);
    dn_base64_encode(good, n_good, b64);
    char *js = malloc(strlen(b64) + 64);
    sprintf(js, "{\"image\":\"%s\"}", b64);
    cr_assert_eq(post(&f, "/score", "Content-Type: application/json\r\n", js, strlen(js), &a), 0);
    o = expect_json(&a, 200);
    cr_expect_null(cJSON_GetObjectItem(o, "heatmap"), "no heatmap unless asked");
    cr_expect_null(cJSON_GetObjectItem(o, "results"), "one image: one result");
    cJSON_Delete(o);
    http_answer_free(&a);
    free(js);
    free(b64);
    free(good);
    free(bad);
    fixture_fini(&f);
}

Test(devnetd, every_bad_request_gets_a_json_error)
{
    REQUIRE_SERVICE_INPUTS();
    char *extra[] = {"--set", "max_body_bytes=1M", NULL};
    fixture f;
    fixture_init(&f, extra, 1);
    http_answer a;
    size_t n_png;
    uint8_t *png = read_image(&f, "test/good/000.png", &n_png);
    uint8_t corrupt[2000];
    memcpy(corrupt, png, sizeof corrupt); /* a PNG cut short */
    cr_assert_eq(post(&f, "/score", "Content-Type: image/png\r\n", corrupt, sizeof corrupt, &a), 0);
    expect_error(&a, 422, "invalid_image");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/score", "Content-Type: text/plain\r\n", "hello", 5, &a), 0);
    expect_error(&a, 415, "unsupported_media_type");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/score", "Content-Type: application/json\r\n", "{\"image\": ", 10, &a), 0);
    expect_error(&a, 400, "invalid_json");
    http_answer_free(&a);
    size_t big = (2u << 20);
    char *huge = calloc(1, big);
    cr_assert_eq(post(&f, "/score", "Content-Type: image/png\r\n", huge, big, &a), 0);
    expect_error(&a, 413, "payload_too_large");
    http_answer_free(&a);
    free(huge);
    cr_assert_eq(http_request(f.d.port, "GET", "/nope", NULL, NULL, 0, &a), 0);
    expect_error(&a, 404, "not_found");
    http_answer_free(&a);
    cr_assert_eq(http_request(f.d.port, "GET", "/score", NULL, NULL, 0, &a), 0);
    expect_error(&a, 405, "method_not_allowed");
    char allow[64];
    cr_expect_eq(http_header(&a, "Allow", allow, sizeof allow), 0);
    cr_expect_str_eq(allow, "POST");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/score?heatmap=jpeg", "Content-Type: image/png\r\n", png, n_png, &a), 0);
    expect_error(&a, 400, "invalid_parameter");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/feedback", "Content-Type: image/png\r\n", png, n_png, &a), 0);
    expect_error(&a, 400, "invalid_label");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/feedback?label=broken", "Content-Type: image/png\r\n", png, n_png, &a), 0);
    expect_error(&a, 400, "invalid_label");
    http_answer_free(&a);
    cr_assert_eq(http_request(f.d.port, "GET", "/jobs/job-999999", NULL, NULL, 0, &a), 0);
    expect_error(&a, 404, "unknown_job");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/model/rollback", NULL, NULL, 0, &a), 0);
    expect_error(&a, 422, "no_older_version");
    http_answer_free(&a);
    /* the daemon is still fine */
    cr_assert_eq(post(&f, "/score", "Content-Type: image/png\r\n", png, n_png, &a), 0);
    cr_expect_eq(a.status, 200);
    http_answer_free(&a);
    free(png);
    fixture_fini(&f);
}

static cJSON *wait_job(const fixture *f, const char *id, int timeout_s)
{
    char path[128];
    snprintf(path, sizeof path, "/jobs/%s", id);
    for (int i = 0; i < timeout_s * 10; i++) {
        http_answer a;
        cr_assert_eq(http_request(f->d.port, "GET", path, NULL, NULL, 0, &a), 0);
        cJSON *o = expect_json(&a, 200);
        http_answer_free(&a);
        const char *st = cJSON_GetObjectItem(o, "status")->valuestring;
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed"))
            return o;
        cJSON_Delete(o);
        usleep(100 * 1000);
    }
    cr_assert_fail("job %s did not finish in %d s", id, timeout_s);
    return NULL;
}

static char *feedback(const fixture *f, const char *rel, const char *label, const char *auth, int want,
                      int *duplicate)
{
    size_t n;
    uint8_t *img = read_image(f, rel, &n);
    char path[64], headers[256];
    snprintf(path, sizeof path, "/feedback?label=%s", label);
    snprintf(headers, sizeof headers, "Content-Type: image/png\r\n%s", auth ? auth : "");
    http_answer a;
    cr_assert_eq(post(f, path, headers, img, n, &a), 0);
    free(img);
    char *job = NULL;
    if (want == 202) {
        cJSON *o = expect_json(&a, 202);
        cr_expect_eq(strlen(cJSON_GetObjectItem(o, "feedback_id")->valuestring), 64);
        if (duplicate)
            *duplicate = cJSON_IsTrue(cJSON_GetObjectItem(o, "duplicate"));
        cJSON *jid = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "retrain"), "job_id");
        job = cJSON_IsString(jid) ? strdup(jid->valuestring) : NULL;
        cJSON_Delete(o);
    } else {
        cr_expect_eq(a.status, want, "%s", a.body);
    }
    http_answer_free(&a);
    return job;
}

/* Feedback as JSON with a base64 image and mask: 202 expected. */
static void feedback_with_mask(const fixture *f, const char *rel, const char *mask_rel, const char *auth)
{
    size_t n, nm;
    uint8_t *img = read_image(f, rel, &n), *mask = read_image(f, mask_rel, &nm);
    char *b_img = malloc(dn_base64_encoded_len(n) + 1), *b_mask = malloc(dn_base64_encoded_len(nm) + 1);
    dn_base64_encode(img, n, b_img);
    dn_base64_encode(mask, nm, b_mask);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "image", b_img);
    cJSON_AddStringToObject(o, "label", "anomaly");
    cJSON_AddStringToObject(o, "mask", b_mask);
    char *body = cJSON_PrintUnformatted(o), headers[256];
    snprintf(headers, sizeof headers, "Content-Type: application/json\r\n%s", auth);
    http_answer a;
    cr_assert_eq(post(f, "/feedback", headers, body, strlen(body), &a), 0);
    cJSON_Delete(expect_json(&a, 202));
    http_answer_free(&a);
    cJSON_Delete(o);
    free(body), free(b_img), free(b_mask), free(img), free(mask);
}

Test(devnetd, feedback_needs_the_key_retrains_and_swaps)
{
    REQUIRE_SERVICE_INPUTS();
    char *extra[] = {"--api-key", "s3cret-key", NULL};
    fixture f;
    fixture_init(&f, extra, 1);
    free(feedback(&f, "test/broken_large/000.png", "anomaly", NULL, 401, NULL));
    free(feedback(&f, "test/broken_large/000.png", "anomaly", "Authorization: Bearer wrong\r\n", 401, NULL));
    const char *auth = "Authorization: Bearer s3cret-key\r\n";
    int dup = -1;
    free(feedback(&f, "test/broken_large/000.png", "anomaly", auth, 202, &dup));
    cr_expect_eq(dup, 0);
    /* the same image with its mask: stored beside it, and the retrain learns from it */
    feedback_with_mask(&f, "test/broken_large/000.png", "ground_truth/broken_large/000_mask.png", auth);
    char *job = feedback(&f, "test/broken_large/001.png", "anomaly", auth, 202, &dup);
    cr_assert_not_null(job);
    free(feedback(&f, "test/broken_large/001.png", "anomaly", auth, 202, &dup));
    cr_expect_eq(dup, 1, "the same image again is a duplicate");
    cJSON *o = wait_job(&f, job, 120);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "succeeded", "%s",
                     cJSON_PrintUnformatted(o));
    cr_expect_eq(num(o, "model_version"), 2);
    cJSON *tr = cJSON_GetObjectItem(o, "trained");
    cr_expect_eq(num(tr, "anomalies"), 2);
    cr_expect_str_eq(cJSON_GetObjectItem(tr, "head")->valuestring, "fusion");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(tr, "head_input")), "patches", "the default");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(tr, "defect_classifier")), "the mask trained a defect classifier");
    cJSON_Delete(o);
    free(job);
    http_answer a0;
    cr_assert_eq(http_request(f.d.port, "GET", "/model", NULL, NULL, 0, &a0), 0);
    o = expect_json(&a0, 200);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "model"), "defect_classifier")));
    cJSON_Delete(o);
    http_answer_free(&a0);
    http_answer a;
    cr_assert_eq(http_request(f.d.port, "GET", "/readyz", NULL, NULL, 0, &a), 0);
    o = expect_json(&a, 200);
    cr_expect_eq(num(o, "model_version"), 2);
    cJSON_Delete(o);
    http_answer_free(&a);
    /* rollback is admin: key needed, then back to version 1 */
    cr_assert_eq(post(&f, "/model/rollback", NULL, NULL, 0, &a), 0);
    cr_expect_eq(a.status, 401);
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/model/rollback", auth, NULL, 0, &a), 0);
    o = expect_json(&a, 200);
    cr_expect_eq(num(o, "from"), 2);
    cr_expect_eq(num(o, "to"), 1);
    cJSON_Delete(o);
    http_answer_free(&a);
    fixture_fini(&f);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

Test(devnetd, acknowledged_feedback_survives_sigkill_and_restart)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    fixture_init(&f, NULL, 1);
    free(feedback(&f, "test/broken_small/000.png", "anomaly", NULL, 202, NULL));
    free(feedback(&f, "test/good/005.png", "normal", NULL, 202, NULL));
    kill(f.d.pid, SIGKILL);
    waitpid(f.d.pid, NULL, 0);
    f.d.pid = 0;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/feedback/anomaly", f.data);
    cr_expect_eq(count_files(dir), 1);
    snprintf(dir, sizeof dir, "%s/feedback/normal", f.data);
    cr_expect_eq(count_files(dir), 1);
    cr_assert_eq(fixture_spawn(&f, NULL), 0);
    /* the restart serves the newest good model at once, and retrains on the feedback it
     * had acknowledged (the kill came before its debounced job could finish) */
    cr_assert_eq(http_wait_status(f.d.port, "/readyz", 200, 60), 0);
    int dup = 0;
    free(feedback(&f, "test/broken_small/000.png", "anomaly", NULL, 202, &dup));
    cr_expect_eq(dup, 1, "the store remembers it across the restart");
    fixture_fini(&f);
}

typedef struct hammer {
    const fixture *f;
    const uint8_t *img;
    size_t len;
    int stop, sent, failed;
    int versions_seen[8];
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
        http_answer a;
        int rc = http_request(h->f->d.port, "POST", "/score", "Content-Type: image/png\r\n", h->img, h->len, &a);
        __atomic_add_fetch(&h->sent, 1, __ATOMIC_RELAXED);
        if (rc || a.status != 200) {
            __atomic_add_fetch(&h->failed, 1, __ATOMIC_RELAXED);
        } else {
            cJSON *o = http_json(&a);
            int v = (int)cJSON_GetObjectItem(cJSON_GetObjectItem(o, "model"), "version")->valuedouble;
            if (v >= 0 && v < 8)
                __atomic_store_n(&h->versions_seen[v], 1, __ATOMIC_RELAXED);
            cJSON_Delete(o);
        }
        http_answer_free(&a);
    }
    return NULL;
}

Test(devnetd, hot_swap_during_concurrent_scoring_fails_nothing)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    fixture_init(&f, NULL, 1);
    hammer h = {.f = &f};
    uint8_t *img = read_image(&f, "test/good/001.png", &h.len);
    h.img = img;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer_main, &h);
    char *job = feedback(&f, "test/contamination/000.png", "anomaly", NULL, 202, NULL);
    cJSON *o = wait_job(&f, job, 120);
    cr_expect_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "succeeded");
    cJSON_Delete(o);
    free(job);
    usleep(500 * 1000); /* some requests on the new model */
    __atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_expect_gt(h.sent, 8);
    cr_expect_eq(h.failed, 0, "%d of %d requests failed", h.failed, h.sent);
    cr_expect(h.versions_seen[1] && h.versions_seen[2], "requests were served by both versions");
    free(img);
    fixture_fini(&f);
}

Test(devnetd, writes_refused_beyond_loopback_without_a_key)
{
    REQUIRE_SERVICE_INPUTS();
    char *extra[] = {"--listen", "0.0.0.0:0", NULL};
    fixture f;
    fixture_init(&f, extra, 1);
    http_answer a;
    cr_assert_eq(post(&f, "/feedback?label=normal", "Content-Type: image/png\r\n", "x", 1, &a), 0);
    expect_error(&a, 403, "writes_disabled");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/model/rollback", NULL, NULL, 0, &a), 0);
    expect_error(&a, 403, "writes_disabled");
    http_answer_free(&a);
    fixture_fini(&f);
}

/* {"images": [b64, ...]}: copies of one image as a JSON batch (slow on purpose). */
static char *json_batch(const uint8_t *img, size_t len, int copies, size_t *n)
{
    char *b64 = malloc(dn_base64_encoded_len(len) + 1);
    dn_base64_encode(img, len, b64);
    size_t bl = strlen(b64);
    char *js = malloc((size_t)copies * (bl + 4) + 32);
    *n = (size_t)sprintf(js, "{\"images\":[");
    for (int i = 0; i < copies; i++)
        *n += (size_t)sprintf(js + *n, "%s\"%s\"", i ? "," : "", b64);
    *n += (size_t)sprintf(js + *n, "]}");
    free(b64);
    return js;
}

Test(devnetd, a_full_queue_answers_503_with_retry_after)
{
    REQUIRE_SERVICE_INPUTS();
    char *extra[] = {"--workers", "1", "--set", "queue_depth=1", NULL};
    fixture f;
    fixture_init(&f, extra, 1);
    hammer h = {.f = &f};
    uint8_t *img = read_image(&f, "test/good/002.png", &h.len);
    size_t n;
    char *js = json_batch(img, h.len, 8, &n); /* slow requests */
    int ok = 0, busy = 0, other = 0;
    pid_t kids[12];
    for (int i = 0; i < 12; i++) { /* separate processes: truly concurrent clients */
        if (!(kids[i] = fork())) {
            http_answer a;
            int rc = http_request(f.d.port, "POST", "/score", "Content-Type: application/json\r\n", js, n, &a);
            char retry[16];
            int code = rc ? 1 : a.status == 200 ? 0 : a.status == 503 && !http_header(&a, "Retry-After", retry, sizeof retry) ? 2 : 1;
            _exit(code);
        }
    }
    for (int i = 0; i < 12; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        ok += code == 0, busy += code == 2, other += code == 1;
    }
    cr_expect_eq(other, 0, "only 200 or 503 with Retry-After");
    cr_expect_gt(ok, 0);
    cr_expect_gt(busy, 0, "12 concurrent slow requests on 1 worker with a queue of 1");
    free(js);
    free(img);
    fixture_fini(&f);
}

Test(devnetd, without_training_images_it_starts_not_ready)
{
    REQUIRE_SERVICE_INPUTS();
    char *extra[] = {"--train-data", "", NULL};
    fixture f;
    fixture_init(&f, extra, 0);
    http_answer a;
    cr_assert_eq(http_request(f.d.port, "GET", "/healthz", NULL, NULL, 0, &a), 0);
    cr_expect_eq(a.status, 200, "alive");
    http_answer_free(&a);
    cr_assert_eq(http_request(f.d.port, "GET", "/readyz", NULL, NULL, 0, &a), 0);
    expect_error(&a, 503, "not_ready");
    http_answer_free(&a);
    size_t len;
    uint8_t *img = read_image(&f, "test/good/000.png", &len);
    cr_assert_eq(post(&f, "/score", "Content-Type: image/png\r\n", img, len, &a), 0);
    expect_error(&a, 503, "no_model");
    char retry[16];
    cr_expect_eq(http_header(&a, "Retry-After", retry, sizeof retry), 0);
    http_answer_free(&a);
    free(img);
    fixture_fini(&f);
}

Test(devnetd, sighup_reloads_the_api_key)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    memset(&f, 0, sizeof f);
    char conf_arg[160];
    char *extra[] = {"--config", conf_arg, NULL};
    /* the config file is written before the fixture starts the daemon */
    f.shared = dn_test_shared();
    char dir[64];
    dn_test_mkdtemp(dir, "devnetd-conf-");
    snprintf(conf_arg, sizeof conf_arg, "%s/devnetd.conf", dir);
    FILE *c = fopen(conf_arg, "w");
    fprintf(c, "api_key = first\n");
    fclose(c);
    fixture_init(&f, extra, 1);
    free(feedback(&f, "test/good/003.png", "normal", "Authorization: Bearer first\r\n", 202, NULL));
    c = fopen(conf_arg, "w");
    fprintf(c, "api_key = second\n");
    fclose(c);
    kill(f.d.pid, SIGHUP);
    int switched = 0;
    for (int i = 0; i < 100 && !switched; i++) {
        http_answer a;
        size_t n;
        uint8_t *img = read_image(&f, "test/good/004.png", &n);
        cr_assert_eq(post(&f, "/feedback?label=normal", "Content-Type: image/png\r\nAuthorization: Bearer second\r\n", img, n, &a), 0);
        switched = a.status == 202;
        http_answer_free(&a);
        free(img);
        if (!switched)
            usleep(100 * 1000);
    }
    cr_expect(switched, "the new key works after SIGHUP");
    free(feedback(&f, "test/good/006.png", "normal", "Authorization: Bearer first\r\n", 401, NULL));
    fixture_fini(&f);
    dn_test_rmtree(dir);
}

Test(devnetd, a_model_that_fails_its_checks_is_not_swapped_in)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    fixture_init(&f, NULL, 1);
    /* a training image labelled anomaly, alone: its patches are in the memory bank, so
     * the new model cannot score it above its threshold; the recall check refuses the
     * model and version 1 stays */
    char *job = feedback(&f, "train/good/000.png", "anomaly", NULL, 202, NULL);
    cJSON *o = wait_job(&f, job, 120);
    cr_expect_str_eq(cJSON_GetObjectItem(o, "status")->valuestring, "failed");
    const cJSON *reason = cJSON_GetObjectItem(o, "reason");
    cr_assert(cJSON_IsString(reason));
    cr_expect(strstr(reason->valuestring, "labelled anomalies") != NULL, "%s", reason->valuestring);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(o, "model_version")));
    cJSON_Delete(o);
    free(job);
    http_answer a;
    cr_assert_eq(http_request(f.d.port, "GET", "/readyz", NULL, NULL, 0, &a), 0);
    o = expect_json(&a, 200);
    cr_expect_eq(num(o, "model_version"), 1);
    cJSON_Delete(o);
    http_answer_free(&a);
    fixture_fini(&f);
}

static int model_version(int port)
{
    http_answer a;
    int v = -1;
    if (!http_request(port, "GET", "/readyz", NULL, NULL, 0, &a) && a.status == 200) {
        cJSON *o = http_json(&a);
        v = (int)cJSON_GetObjectItem(o, "model_version")->valuedouble;
        cJSON_Delete(o);
    }
    http_answer_free(&a);
    return v;
}

/* What the live model's head reads (GET /model), and the status of one raw PNG scored. */
static int score_status(const fixture *f, char head_input[16])
{
    http_answer a;
    head_input[0] = '\0';
    cr_assert_eq(http_request(f->d.port, "GET", "/model", NULL, NULL, 0, &a), 0);
    cJSON *o = expect_json(&a, 200);
    const char *in = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "model"), "head_input"));
    snprintf(head_input, 16, "%s", in ? in : "");
    cJSON_Delete(o);
    http_answer_free(&a);
    size_t len;
    uint8_t *img = read_image(f, "test/broken_large/004.png", &len);
    cr_assert_eq(post(f, "/score", "Content-Type: image/png\r\n", img, len, &a), 0);
    int status = a.status;
    http_answer_free(&a);
    free(img);
    return status;
}

/* One trainer and two scorers on one data dir: feedback taken by a scorer reaches the
 * trainer through the shared folder, and both scorers follow the new version. The trainer
 * trains the paper's head on the final map (retrain_head_input), so the scorers go from a
 * model whose forward pass stops at stride 16 to one that needs the whole pass. */
Test(devnetd, a_trainer_and_two_scorers_share_one_data_dir)
{
    REQUIRE_SERVICE_INPUTS();
    char *trainer_args[] = {"--role", "trainer", "--set", "retrain_head_input=final", NULL};
    char *scorer_args[] = {"--role", "scorer", NULL};
    fixture t;
    fixture_init(&t, trainer_args, 1);
    fixture s[2];
    for (int i = 0; i < 2; i++) {
        s[i] = t; /* same data dir and training folder, own process and log */
        snprintf(s[i].log, sizeof s[i].log, "%s/scorer%d.log", t.dir, i);
        cr_assert_eq(fixture_spawn(&s[i], scorer_args), 0, "scorer %d did not start", i);
        cr_assert_eq(http_wait_status(s[i].d.port, "/readyz", 200, 60), 0);
        cr_expect_eq(model_version(s[i].d.port), 1);
    }
    int dup = -1;
    char *job = feedback(&s[0], "test/broken_large/002.png", "anomaly", NULL, 202, &dup);
    cr_expect_null(job, "a scorer schedules nothing itself");
    free(feedback(&s[1], "test/broken_large/003.png", "anomaly", NULL, 202, &dup));
    int v[2] = {0, 0};
    for (int i = 0; i < 1200 && (v[0] < 2 || v[1] < 2); i++) {
        usleep(100 * 1000);
        v[0] = model_version(s[0].d.port);
        v[1] = model_version(s[1].d.port);
    }
    cr_expect_geq(v[0], 2, "scorer 0 follows the trainer's new version");
    cr_expect_geq(v[1], 2, "scorer 1 follows the trainer's new version");
    cr_expect_geq(model_version(t.d.port), 2);
    char head_input[16];
    cr_expect_eq(score_status(&s[1], head_input), 200);
    cr_expect_str_eq(head_input, "final");
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(devnetd_stop(&s[i].d, SIGTERM), 0);
        expect_clean_log(s[i].log);
    }
    fixture_fini(&t);
}

/* SIGTERM while a slow request is in flight: the request is answered, then exit 0. */
Test(devnetd, sigterm_finishes_requests_in_flight)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    fixture_init(&f, NULL, 1);
    size_t len;
    uint8_t *img = read_image(&f, "test/good/008.png", &len);
    size_t n;
    char *js = json_batch(img, len, 8, &n);
    int sent[2];
    cr_assert_eq(pipe(sent), 0);
    pid_t kid = fork();
    if (!kid) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f.d.port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa))
            _exit(3);
        char head[256];
        int hn = snprintf(head, sizeof head, "POST /score?heatmap=png HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", n);
        if (http_send_all(fd, head, (size_t)hn) || http_send_all(fd, js, n))
            _exit(4);
        if (write(sent[1], "s", 1) != 1) /* the whole request is out: now the parent signals */
            _exit(5);
        char buf[64] = {0};
        ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
        _exit(r > 12 && !strncmp(buf, "HTTP/1.1 200", 12) ? 0 : 6);
    }
    char c;
    cr_assert_eq(read(sent[0], &c, 1), 1);
    usleep(100 * 1000); /* the daemon has the request in hand */
    kill(f.d.pid, SIGTERM);
    int st;
    waitpid(kid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the request in flight was answered 200 (child %d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_expect_eq(devnetd_stop(&f.d, 0), 0, "exit 0 after draining");
    free(js);
    free(img);
    fixture_fini(&f);
}

/* A full disk under the feedback store: /feedback answers 507, scoring goes on, and no
 * half-written file is left behind. The store gets its own 64 KiB tmpfs in a private
 * mount namespace (root only; skipped otherwise). */
Test(devnetd, a_full_disk_answers_507_and_scoring_goes_on)
{
    REQUIRE_SERVICE_INPUTS();
    fixture f;
    fixture_init(&f, NULL, 1);
    char store[256];
    snprintf(store, sizeof store, "%s/feedback", f.data);
    devnetd_stop(&f.d, SIGTERM);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", store, "tmpfs", 0, "size=64k") != 0) {
        dn_test_rmtree(f.dir);
        cr_skip_test("cannot mount a small tmpfs here (needs root): %s", strerror(errno));
    }
    cr_assert_eq(fixture_spawn(&f, NULL), 0);
    cr_assert_eq(http_wait_status(f.d.port, "/readyz", 200, 60), 0);
    size_t len;
    uint8_t *img = read_image(&f, "test/broken_large/004.png", &len); /* ~200 KB: cannot fit */
    cr_assert_gt(len, 64u << 10);
    http_answer a;
    cr_assert_eq(post(&f, "/feedback?label=anomaly", "Content-Type: image/png\r\n", img, len, &a), 0);
    expect_error(&a, 507, "insufficient_storage");
    http_answer_free(&a);
    cr_assert_eq(post(&f, "/score", "Content-Type: image/png\r\n", img, len, &a), 0);
    cr_expect_eq(a.status, 200, "scoring goes on");
    http_answer_free(&a);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/anomaly", store);
    cr_expect_eq(count_files(dir), 0, "nothing half-written is visible");
    DIR *d = opendir(dir);
    int hidden = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        hidden += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    cr_expect_eq(hidden, 0, "no temporary file is left behind");
    free(img);
    devnetd_stop(&f.d, SIGTERM);
    umount(store);
    fixture_fini(&f);
}
