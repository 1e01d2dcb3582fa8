/* dn_prom: exact exposition lines after a known sequence of events, the format's escaping,
 * exact totals under concurrent updates and the cap on label series. */
#include "test_util.h"

#include "dn_error.h"
#include "dn_prom.h"

#include <math.h>
#include <pthread.h>

/* Whether text holds this exact line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

#define ASSERT_LINE(text, line) cr_assert(has_line(text, line), "missing line: %s\n%s", line, text)

static int count_prefix(const char *text, const char *prefix)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, prefix)); p++)
        n += p == text || p[-1] == '\n';
    return n;
}

/* Every line is "# HELP name text", "# TYPE name type" or a sample of the family last
 * typed (name, name_bucket/_sum/_count for histograms) with a number as value. */
static void check_format(const char *text)
{
    char family[128] = "", type[32] = "";
    cr_assert(*text && text[strlen(text) - 1] == '\n');
    char *copy = strdup(text);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "# HELP ", 7))
            continue;
        if (sscanf(line, "# TYPE %127s %31s", family, type) == 2) {
            cr_assert(!strcmp(type, "counter") || !strcmp(type, "gauge") || !strcmp(type, "histogram"), "%s", line);
            continue;
        }
        size_t n = strlen(family);
        cr_assert(n && !strncmp(line, family, n), "sample outside its family: %s", line);
        const char *rest = line + n;
        if (!strcmp(type, "histogram"))
            for (const char *sfx = "_bucket\0_sum\0_count\0"; *sfx; sfx += strlen(sfx) + 1)
                if (!strncmp(rest, sfx, strlen(sfx)) && (rest[strlen(sfx)] == '{' || rest[strlen(sfx)] == ' ')) {
                    rest += strlen(sfx);
                    break;
                }
        if (*rest == '{') {
            rest = strstr(rest, "} ");
            cr_assert_not_null(rest, "%s", line);
            rest++;
        }
        cr_assert_eq(*rest, ' ', "%s", line);
        char *end;
        strtod(rest + 1, &end);
        cr_assert(end > rest + 1 && *end == '\0', "bad value: %s", line);
    }
    free(copy);
}

Test(prom, known_sequence_renders_exact_lines)
{
    dn_prom p;
    cr_assert_eq(dn_prom_init(&p), DN_OK);
    dn_prom_request(&p, "/score", 200, 0.00390625);
    dn_prom_request(&p, "/score", 200, 0.25); /* on a bound: buckets are inclusive */
    dn_prom_request(&p, "/score", 500, 3);
    dn_prom_request(&p, "/jobs/{id}", 404, 20);
    dn_prom_gauge(&p, DN_PROM_QUEUE_DEPTH, 5);
    dn_prom_gauge(&p, DN_PROM_INFLIGHT, 2);
    dn_prom_gauge(&p, DN_PROM_MODEL_VERSION, 7);
    dn_prom_gauge(&p, DN_PROM_READY, 1);
    dn_prom_gauge(&p, DN_PROM_WORKERS, 4);
    dn_prom_gauge(&p, DN_PROM_WORKERS, 0.5);
    dn_prom_feedback(&p, "anomaly", 0);
    dn_prom_feedback(&p, "anomaly", 0);
    dn_prom_feedback(&p, "normal", 1);
    dn_prom_retrain(&p, "succeeded", 12.5);
    dn_prom_retrain(&p, "failed", 400);
    char *t = dn_prom_render(&p);
    cr_assert_not_null(t);
    check_format(t);
    static const char *const want[] = {
        "# TYPE devnet_requests_total counter",
        "devnet_requests_total{endpoint=\"/score\",status=\"200\"} 2",
        "devnet_requests_total{endpoint=\"/score\",status=\"500\"} 1",
        "devnet_requests_total{endpoint=\"/jobs/{id}\",status=\"404\"} 1",
        "# TYPE devnet_request_duration_seconds histogram",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.005\"} 1",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.01\"} 1",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.025\"} 1",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.05\"} 1",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.1\"} 1",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.25\"} 2",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.5\"} 2",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"1\"} 2",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"2.5\"} 2",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"5\"} 3",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"10\"} 3",
        "devnet_request_duration_seconds_bucket{endpoint=\"/score\",le=\"+Inf\"} 3",
        "devnet_request_duration_seconds_sum{endpoint=\"/score\"} 3.25390625",
        "devnet_request_duration_seconds_count{endpoint=\"/score\"} 3",
        "devnet_request_duration_seconds_bucket{endpoint=\"/jobs/{id}\",le=\"10\"} 0",
        "devnet_request_duration_seconds_bucket{endpoint=\"/jobs/{id}\",le=\"+Inf\"} 1",
        "devnet_request_duration_seconds_sum{endpoint=\"/jobs/{id}\"} 20",
        "devnet_request_duration_seconds_count{endpoint=\"/jobs/{id}\"} 1",
        "# TYPE devnet_queue_depth gauge",
        "devnet_queue_depth 5",
        "devnet_inflight_requests 2",
        "devnet_model_version 7",
        "devnet_ready 1",
        "devnet_workers 0.5",
        "# TYPE devnet_feedback_total counter",
        "devnet_feedback_total{label=\"anomaly\",duplicate=\"false\"} 2",
        "devnet_feedback_total{label=\"normal\",duplicate=\"true\"} 1",
        "# TYPE devnet_retrain_runs_total counter",
        "devnet_retrain_runs_total{outcome=\"succeeded\"} 1",
        "devnet_retrain_runs_total{outcome=\"failed\"} 1",
        "# TYPE devnet_retrain_duration_seconds histogram",
        "devnet_retrain_duration_seconds_bucket{le=\"10\"} 0",
        "devnet_retrain_duration_seconds_bucket{le=\"20\"} 1",
        "devnet_retrain_duration_seconds_bucket{le=\"300\"} 1",
        "devnet_retrain_duration_seconds_bucket{le=\"+Inf\"} 2",
        "devnet_retrain_duration_seconds_sum 412.5",
        "devnet_retrain_duration_seconds_count 2",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ASSERT_LINE(t, want[i]);
    cr_assert_eq(count_prefix(t, "devnet_request_duration_seconds_bucket{endpoint=\"/score\""), 12);
    cr_assert_eq(count_prefix(t, "devnet_retrain_duration_seconds_bucket"), 10);
    cr_assert_eq(count_prefix(t, "# HELP "), 10, "one HELP per family");
    cr_assert_eq(count_prefix(t, "# TYPE "), 10);
    cr_assert_null(strstr(t, "\"other\""), "nothing overflowed");
    free(t);
    dn_prom_free(&p);
}

Test(prom, empty_registry_is_valid)
{
    dn_prom p;
    cr_assert_eq(dn_prom_init(&p), DN_OK);
    char *t = dn_prom_render(&p);
    check_format(t);
    ASSERT_LINE(t, "devnet_ready 0");
    ASSERT_LINE(t, "devnet_retrain_duration_seconds_count 0");
    cr_assert_eq(count_prefix(t, "devnet_requests_total{"), 0);
    free(t);
    dn_prom_free(&p);
}

Test(prom, label_values_are_escaped_and_odd_input_is_bounded)
{
    dn_prom p;
    cr_assert_eq(dn_prom_init(&p), DN_OK);
    dn_prom_request(&p, "a\"b\\c\nd", 200, 0.1);
    dn_prom_request(&p, "/x", 42, 0.1);     /* not an HTTP status */
    dn_prom_request(&p, NULL, 404, -1);      /* a negative duration counts as 0 */
    dn_prom_request(&p, "other", 404, NAN);
    char long_name[DN_PROM_MAX_LABEL + 8];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    dn_prom_request(&p, long_name, 404, 0);
    dn_prom_feedback(&p, "new\nline", 7);
    dn_prom_gauge(&p, DN_PROM_GAUGES, 9); /* not a gauge: ignored */
    dn_prom_gauge(&p, DN_PROM_MODEL_VERSION, 1e-7);
    char *t = dn_prom_render(&p);
    check_format(t);
    ASSERT_LINE(t, "devnet_requests_total{endpoint=\"a\\\"b\\\\c\\nd\",status=\"200\"} 1");
    ASSERT_LINE(t, "devnet_request_duration_seconds_count{endpoint=\"a\\\"b\\\\c\\nd\"} 1");
    ASSERT_LINE(t, "devnet_requests_total{endpoint=\"/x\",status=\"0\"} 1");
    ASSERT_LINE(t, "devnet_requests_total{endpoint=\"other\",status=\"404\"} 3");
    ASSERT_LINE(t, "devnet_request_duration_seconds_bucket{endpoint=\"other\",le=\"0.005\"} 3");
    ASSERT_LINE(t, "devnet_request_duration_seconds_sum{endpoint=\"other\"} 0");
    ASSERT_LINE(t, "devnet_feedback_total{label=\"new\\nline\",duplicate=\"true\"} 1");
    ASSERT_LINE(t, "devnet_model_version 1e-07");
    cr_assert_null(strstr(t, "xxxxxxxx"), "an over-long label value is not shown");
    free(t);
    dn_prom_free(&p);
}

Test(prom, series_are_capped_under_other)
{
    dn_prom p;
    cr_assert_eq(dn_prom_init(&p), DN_OK);
    char name[32];
    for (int i = 0; i < DN_PROM_MAX_SERIES + 6; i++) {
        snprintf(name, sizeof name, "/e%d", i);
        dn_prom_request(&p, name, 200, 0.5);
        dn_prom_request(&p, name, 200, 0.5);
        dn_prom_feedback(&p, name, 0);
    }
    dn_prom_request(&p, "/e0", 500, 0.5); /* a known endpoint in a new series: no room */
    dn_prom_request(&p, "/e1", 200, 0.5); /* an existing series still counts */
    char *t = dn_prom_render(&p);
    check_format(t);
    cr_assert_eq(count_prefix(t, "devnet_requests_total{"), DN_PROM_MAX_SERIES + 2);
    ASSERT_LINE(t, "devnet_requests_total{endpoint=\"/e1\",status=\"200\"} 3");
    ASSERT_LINE(t, "devnet_requests_total{endpoint=\"/e63\",status=\"200\"} 2");
    ASSERT_LINE(t, "devnet_requests_total{endpoint=\"other\",status=\"200\"} 12");
    ASSERT_LINE(t, "devnet_requests_total{endpoint=\"other\",status=\"500\"} 1");
    cr_assert_null(strstr(t, "\"/e64\""));
    /* Each endpoint's _count equals the sum of its requests_total series. */
    cr_assert_eq(count_prefix(t, "devnet_request_duration_seconds_count{"), DN_PROM_MAX_SERIES + 1);
    ASSERT_LINE(t, "devnet_request_duration_seconds_count{endpoint=\"/e0\"} 2");
    ASSERT_LINE(t, "devnet_request_duration_seconds_count{endpoint=\"other\"} 13");
    ASSERT_LINE(t, "devnet_request_duration_seconds_sum{endpoint=\"other\"} 6.5");
    cr_assert_eq(count_prefix(t, "devnet_feedback_total{"), DN_PROM_MAX_SERIES + 1);
    ASSERT_LINE(t, "devnet_feedback_total{label=\"other\",duplicate=\"false\"} 6");
    free(t);
    dn_prom_free(&p);
}

#define THREADS 8
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    dn_prom *p = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        dn_prom_request(p, i % 2 ? "/score" : "/healthz", i % 3 ? 200 : 503, 0.5);
        dn_prom_gauge(p, DN_PROM_INFLIGHT, i);
        if (i % 4 == 0)
            dn_prom_feedback(p, "normal", 0);
        if (i % 1000 == 0)
            free(dn_prom_render(p)); /* scrapes during updates */
    }
    return NULL;
}

Test(prom, concurrent_updates_lose_nothing)
{
    dn_prom p;
    cr_assert_eq(dn_prom_init(&p), DN_OK);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, hammer, &p), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    char *t = dn_prom_render(&p);
    check_format(t);
    char line[128];
    /* Per thread: odd i → /score, i % 3 != 0 → 200. Of 20000: 10000 odd, of which 3333 are
     * multiples of 3 (3, 9, ..., 19995). */
    snprintf(line, sizeof line, "devnet_requests_total{endpoint=\"/score\",status=\"200\"} %d", THREADS * (10000 - 3333));
    ASSERT_LINE(t, line);
    snprintf(line, sizeof line, "devnet_requests_total{endpoint=\"/score\",status=\"503\"} %d", THREADS * 3333);
    ASSERT_LINE(t, line);
    snprintf(line, sizeof line, "devnet_requests_total{endpoint=\"/healthz\",status=\"503\"} %d", THREADS * 3334);
    ASSERT_LINE(t, line);
    snprintf(line, sizeof line, "devnet_request_duration_seconds_count{endpoint=\"/score\"} %d", THREADS * 10000);
    ASSERT_LINE(t, line);
    snprintf(line, sizeof line, "devnet_request_duration_seconds_sum{endpoint=\"/healthz\"} %d", THREADS * 5000);
    ASSERT_LINE(t, line);
    snprintf(line, sizeof line, "devnet_feedback_total{label=\"normal\",duplicate=\"false\"} %d", THREADS * 5000);
    ASSERT_LINE(t, line);
    ASSERT_LINE(t, "devnet_inflight_requests 19999");
    free(t);
    dn_prom_free(&p);
}
