/* dn_retrain: background retraining. Feedback arms a debounced job; one job runs at a
 * time, and feedback that arrives while it runs queues exactly one more. A job trains on
 * the configured normal images plus every stored feedback image, checks the new model
 * (labelled anomalies above its threshold, false-positive rate on held-out normals within
 * bound) and only then publishes it as the next version, which the registry swaps in.
 * A job that fails leaves the live model alone and says why. */
#ifndef DN_RETRAIN_H
#define DN_RETRAIN_H

#include "dn_config.h"
#include "dn_features.h"
#include "dn_prom.h"
#include "dn_registry.h"
#include "dn_store.h"

#include <cJSON.h>
#include <pthread.h>

#define DN_RETRAIN_JOBS_KEPT 64   /* jobs GET /jobs/{id} still knows */
#define DN_RETRAIN_MIN_NORMALS 10 /* fewer normal images than this: no model can be trained */
#define DN_RETRAIN_VALIDATION_EVERY 10 /* one normal in ten is held out to check a new model */

typedef enum dn_job_status { DN_JOB_QUEUED = 0, DN_JOB_RUNNING, DN_JOB_SUCCEEDED, DN_JOB_FAILED } dn_job_status;

typedef struct dn_job {
    char id[32];
    dn_job_status status;
    char reason[DN_ERROR_MSG_MAX]; /* why it failed or was not swapped in; "" otherwise */
    double created, started, finished; /* wall-clock seconds; 0 = not yet */
    char stage[32];
    int done, total; /* progress within the stage */
    int has_result;  /* trained and checks below are set */
    char head[16];
    char head_input[16]; /* "" for a model without a head */
    int tail, defect_classifier, normals, anomalies;
    double seconds, budget_s;
    int has_checks;
    double recall, fpr;
    int model_version; /* published version, 0 = none */
} dn_job;

typedef struct dn_retrain {
    const dn_config *cfg; /* settings fixed at start: data dir, train data, budget, bounds */
    dn_registry *reg;
    dn_store *store;
    dn_prom *prom;
    const dn_backbone *bb;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stopping;
    dn_job jobs[DN_RETRAIN_JOBS_KEPT]; /* ring; next_job counts every job ever made */
    int next_job;
    int queued;       /* index of the queued job, -1 = none */
    int running;      /* index of the running job, -1 = none */
    double due;       /* monotonic time the queued job may start (debounce) */
    char seen_store[65]; /* store fingerprint the last job trained on (trainer role polling) */
} dn_retrain;

/* Starts the retraining thread. When no model is live and normal images exist, a first
 * job is queued at once. cfg, reg, store, prom and bb must outlive the module. */
int dn_retrain_start(dn_retrain *r, const dn_config *cfg, dn_registry *reg, dn_store *store,
                     dn_prom *prom, const dn_backbone *bb, dn_error *err);
/* Stops after the running job's current stage (a job cut short fails; its model is not
 * published) and joins the thread. Safe to call twice. */
void dn_retrain_stop(dn_retrain *r);
/* New feedback: (re)arms the debounced job. Writes the id of the job that will train on it
 * and its status ("queued" or "running" never: a running job has not seen it, so a queued
 * one follows). */
void dn_retrain_notify(dn_retrain *r, char job_id[32], const char **status);
/* A job as JSON (GET /jobs/{id}), or NULL when unknown. */
cJSON *dn_retrain_job_json(dn_retrain *r, const char *id);
const char *dn_job_status_name(dn_job_status s);

#endif
