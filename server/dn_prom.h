/* dn_prom: the daemon's metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Families: devnet_requests_total{endpoint,status}, devnet_request_duration_seconds{endpoint}
 * (histogram), the gauges devnet_queue_depth, devnet_inflight_requests,
 * devnet_model_version, devnet_ready, devnet_workers, devnet_feedback_total{label,duplicate},
 * devnet_retrain_runs_total{outcome} and devnet_retrain_duration_seconds (histogram).
 *
 * Label series are bounded so that a stream of odd requests cannot grow memory or the
 * scrape: each labelled family keeps at most DN_PROM_MAX_SERIES series of its own, and
 * what does not fit is counted under the label value "other" (which every family always
 * has room for). One mutex guards everything: an update is a short table lookup. */
#ifndef DN_PROM_H
#define DN_PROM_H

#include <pthread.h>
#include <stdint.h>

#define DN_PROM_MAX_SERIES 64 /* per labelled family, "other" excluded */
#define DN_PROM_MAX_LABEL 64  /* a label value incl. NUL; longer ones count as "other" */
#define DN_PROM_MAX_STATUS 599 /* statuses outside 100..599 are recorded as 0 */
#define DN_PROM_MAX_BUCKETS 12 /* incl. +Inf */

typedef enum dn_prom_gauge_id {
    DN_PROM_QUEUE_DEPTH,
    DN_PROM_INFLIGHT,
    DN_PROM_MODEL_VERSION,
    DN_PROM_READY,
    DN_PROM_WORKERS,
    DN_PROM_GAUGES
} dn_prom_gauge_id;

typedef struct dn_prom_hist {
    uint64_t n[DN_PROM_MAX_BUCKETS]; /* per bucket, not cumulative; the last is +Inf */
    double sum;
    uint64_t count;
} dn_prom_hist;

/* Counters keyed by a label value and a small integer (status code, duplicate flag, 0),
 * with the overflow series ("other", code) kept apart so that they always fit. */
typedef struct dn_prom_series {
    struct {
        char name[DN_PROM_MAX_LABEL];
        int code;
        uint64_t n;
    } s[DN_PROM_MAX_SERIES];
    int count;
    uint64_t other[DN_PROM_MAX_STATUS + 1]; /* by code */
} dn_prom_series;

typedef struct dn_prom {
    pthread_mutex_t mu;
    dn_prom_series requests;       /* endpoint, status */
    char endpoint[DN_PROM_MAX_SERIES][DN_PROM_MAX_LABEL]; /* endpoints with a duration */
    dn_prom_hist duration[DN_PROM_MAX_SERIES];
    int n_endpoints;
    dn_prom_hist duration_other;   /* requests counted under endpoint "other" */
    double gauge[DN_PROM_GAUGES];
    dn_prom_series feedback;       /* label, duplicate */
    dn_prom_series retrain_runs;   /* outcome, 0 */
    dn_prom_hist retrain_duration;
} dn_prom;

/* DN_OK, or DN_ENOMEM when the mutex cannot be created. */
int dn_prom_init(dn_prom *p);
void dn_prom_free(dn_prom *p);

/* One answered request. endpoint is a route template ("/score", "/jobs/{id}", "other"),
 * never a raw path, so that label values stay few; seconds is its whole duration. */
void dn_prom_request(dn_prom *p, const char *endpoint, int status, double seconds);

void dn_prom_gauge(dn_prom *p, dn_prom_gauge_id g, double v);

/* One feedback submission; duplicate: the same image and label were already stored. */
void dn_prom_feedback(dn_prom *p, const char *label, int duplicate);

/* One finished retrain: outcome "succeeded" or "failed". */
void dn_prom_retrain(dn_prom *p, const char *outcome, double seconds);

/* The exposition text (Content-Type: text/plain; version=0.0.4), malloc'd for the caller
 * to free; NULL when out of memory. */
char *dn_prom_render(dn_prom *p);

#endif
