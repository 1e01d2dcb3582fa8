#include "dn_prom.h"

#include "dn_error.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double retrain_bounds[] = {1, 2, 5, 10, 20, 30, 60, 120, 300};
#define N_LATENCY ((int)(sizeof latency_bounds / sizeof latency_bounds[0]))
#define N_RETRAIN ((int)(sizeof retrain_bounds / sizeof retrain_bounds[0]))
_Static_assert(N_LATENCY < DN_PROM_MAX_BUCKETS && N_RETRAIN < DN_PROM_MAX_BUCKETS, "room for +Inf");

static const char *const gauge_info[DN_PROM_GAUGES][2] = {
    {"devnet_queue_depth", "Jobs waiting for a scoring worker."},
    {"devnet_inflight_requests", "Requests being handled."},
    {"devnet_model_version", "Version of the model being served (0: none)."},
    {"devnet_ready", "1 when a model is loaded and requests are scored, else 0."},
    {"devnet_workers", "Scoring worker threads."},
};

int dn_prom_init(dn_prom *p)
{
    memset(p, 0, sizeof *p);
    return pthread_mutex_init(&p->mu, NULL) ? DN_ENOMEM : DN_OK;
}

void dn_prom_free(dn_prom *p)
{
    pthread_mutex_destroy(&p->mu);
}

/* The counter of (name, code): its own series while the table has room, else
 * ("other", code). *named tells which. code is 0..DN_PROM_MAX_STATUS. */
static uint64_t *series_counter(dn_prom_series *t, const char *name, int code, int *named)
{
    *named = name && strcmp(name, "other") && strnlen(name, DN_PROM_MAX_LABEL) < DN_PROM_MAX_LABEL;
    if (!*named)
        return &t->other[code];
    for (int i = 0; i < t->count; i++)
        if (t->s[i].code == code && !strcmp(t->s[i].name, name))
            return &t->s[i].n;
    if (t->count == DN_PROM_MAX_SERIES) {
        *named = 0;
        return &t->other[code];
    }
    int i = t->count++;
    strcpy(t->s[i].name, name);
    t->s[i].code = code;
    return &t->s[i].n;
}

static void hist_add(dn_prom_hist *h, const double *bounds, int nb, double v)
{
    if (!(v >= 0)) /* NaN or negative: a clock step, not a real duration */
        v = 0;
    int i = 0;
    while (i < nb && v > bounds[i])
        i++;
    h->n[i]++;
    h->sum += v;
    h->count++;
}

/* The duration histogram of an endpoint that has a named request series. There is always
 * room: each endpoint here owns at least one of the DN_PROM_MAX_SERIES named series. */
static dn_prom_hist *endpoint_hist(dn_prom *p, const char *endpoint)
{
    for (int i = 0; i < p->n_endpoints; i++)
        if (!strcmp(p->endpoint[i], endpoint))
            return &p->duration[i];
    strcpy(p->endpoint[p->n_endpoints], endpoint);
    return &p->duration[p->n_endpoints++];
}

void dn_prom_request(dn_prom *p, const char *endpoint, int status, double seconds)
{
    int code = status >= 100 && status <= DN_PROM_MAX_STATUS ? status : 0, named;
    pthread_mutex_lock(&p->mu);
    (*series_counter(&p->requests, endpoint, code, &named))++;
    /* A request counted under "other" is timed under "other" too, so that each endpoint's
     * _count equals the sum of its requests_total series. */
    hist_add(named ? endpoint_hist(p, endpoint) : &p->duration_other, latency_bounds, N_LATENCY, seconds);
    pthread_mutex_unlock(&p->mu);
}

void dn_prom_gauge(dn_prom *p, dn_prom_gauge_id g, double v)
{
    if ((unsigned)g >= DN_PROM_GAUGES)
        return;
    pthread_mutex_lock(&p->mu);
    p->gauge[g] = v;
    pthread_mutex_unlock(&p->mu);
}

void dn_prom_feedback(dn_prom *p, const char *label, int duplicate)
{
    int named;
    pthread_mutex_lock(&p->mu);
    (*series_counter(&p->feedback, label, duplicate != 0, &named))++;
    pthread_mutex_unlock(&p->mu);
}

void dn_prom_retrain(dn_prom *p, const char *outcome, double seconds)
{
    int named;
    pthread_mutex_lock(&p->mu);
    (*series_counter(&p->retrain_runs, outcome, 0, &named))++;
    hist_add(&p->retrain_duration, retrain_bounds, N_RETRAIN, seconds);
    pthread_mutex_unlock(&p->mu);
}

/* ---- rendering ---- */

static void put_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value escaped as the format asks: backslash, double quote and newline. */
static void put_escaped(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f);
        if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

/* The shortest of %.15g and %.17g that reads back exactly, as Prometheus clients write. */
static void put_double(FILE *f, double v)
{
    char s[32];
    if (isnan(v)) {
        fputs("NaN", f);
        return;
    }
    if (isinf(v)) {
        fputs(v > 0 ? "+Inf" : "-Inf", f);
        return;
    }
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v)
        snprintf(s, sizeof s, "%.17g", v);
    fputs(s, f);
}

/* How a labelled counter family names its labels. code_label NULL: the code is not shown. */
typedef struct labels {
    const char *metric, *label, *code_label;
    int code_is_bool;
} labels;

static void put_counter(FILE *f, const labels *l, const char *name, int code, uint64_t n)
{
    fprintf(f, "%s{%s=\"", l->metric, l->label);
    put_escaped(f, name);
    if (l->code_label && l->code_is_bool)
        fprintf(f, "\",%s=\"%s", l->code_label, code ? "true" : "false");
    else if (l->code_label)
        fprintf(f, "\",%s=\"%d", l->code_label, code);
    fprintf(f, "\"} %" PRIu64 "\n", n);
}

static void put_series(FILE *f, const labels *l, const dn_prom_series *t)
{
    for (int i = 0; i < t->count; i++)
        put_counter(f, l, t->s[i].name, t->s[i].code, t->s[i].n);
    for (int c = 0; c <= DN_PROM_MAX_STATUS; c++)
        if (t->other[c])
            put_counter(f, l, "other", c, t->other[c]);
}

/* before endpoint="x" after, or nothing for a histogram without an endpoint label. */
static void put_endpoint(FILE *f, const char *endpoint, const char *before, const char *after)
{
    if (!endpoint)
        return;
    fprintf(f, "%sendpoint=\"", before);
    put_escaped(f, endpoint);
    fprintf(f, "\"%s", after);
}

static void put_hist(FILE *f, const char *metric, const char *endpoint, const dn_prom_hist *h,
                     const double *bounds, int nb)
{
    uint64_t cum = 0;
    for (int i = 0; i <= nb; i++) {
        cum += h->n[i];
        fprintf(f, "%s_bucket{", metric);
        put_endpoint(f, endpoint, "", ",");
        fputs("le=\"", f);
        put_double(f, i < nb ? bounds[i] : INFINITY);
        fprintf(f, "\"} %" PRIu64 "\n", cum);
    }
    fprintf(f, "%s_sum", metric);
    put_endpoint(f, endpoint, "{", "}");
    fputc(' ', f);
    put_double(f, h->sum);
    fprintf(f, "\n%s_count", metric);
    put_endpoint(f, endpoint, "{", "}");
    fprintf(f, " %" PRIu64 "\n", h->count);
}

static void render(FILE *f, const dn_prom *p)
{
    static const labels requests = {"devnet_requests_total", "endpoint", "status", 0};
    static const labels feedback = {"devnet_feedback_total", "label", "duplicate", 1};
    static const labels retrain = {"devnet_retrain_runs_total", "outcome", NULL, 0};
    const char *dur = "devnet_request_duration_seconds";
    put_family(f, requests.metric, "counter", "HTTP requests answered, by route template and status.");
    put_series(f, &requests, &p->requests);
    put_family(f, dur, "histogram", "Time from a request's arrival to its answer, queue wait included.");
    for (int i = 0; i < p->n_endpoints; i++)
        put_hist(f, dur, p->endpoint[i], &p->duration[i], latency_bounds, N_LATENCY);
    if (p->duration_other.count)
        put_hist(f, dur, "other", &p->duration_other, latency_bounds, N_LATENCY);
    for (int g = 0; g < DN_PROM_GAUGES; g++) {
        put_family(f, gauge_info[g][0], "gauge", gauge_info[g][1]);
        fprintf(f, "%s ", gauge_info[g][0]);
        put_double(f, p->gauge[g]);
        fputc('\n', f);
    }
    put_family(f, feedback.metric, "counter", "Feedback submissions, by label and whether already known.");
    put_series(f, &feedback, &p->feedback);
    put_family(f, retrain.metric, "counter", "Finished retrains, by outcome.");
    put_series(f, &retrain, &p->retrain_runs);
    put_family(f, "devnet_retrain_duration_seconds", "histogram", "Time a retrain took, whatever its outcome.");
    put_hist(f, "devnet_retrain_duration_seconds", NULL, &p->retrain_duration, retrain_bounds, N_RETRAIN);
}

char *dn_prom_render(dn_prom *p)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    /* Formatting under the lock gives a consistent snapshot; it takes microseconds and
     * scrapes come seconds apart, so request completions barely wait. */
    pthread_mutex_lock(&p->mu);
    render(f, p);
    pthread_mutex_unlock(&p->mu);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(text);
        return NULL;
    }
    return text;
}
