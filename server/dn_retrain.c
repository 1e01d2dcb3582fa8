#include "dn_retrain.h"

#include "dn_clock.h"
#include "dn_dataset.h"
#include "dn_file.h"
#include "dn_log.h"
#include "dn_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The store fingerprint the newest published model was trained on, kept in the data dir
 * so that feedback acknowledged just before a crash still triggers a retrain at start. */
#define STATE_FILE "retrain.state"

static double wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

const char *dn_job_status_name(dn_job_status s)
{
    static const char *names[] = {"queued", "running", "succeeded", "failed"};
    return s >= DN_JOB_QUEUED && s <= DN_JOB_FAILED ? names[s] : "unknown";
}

static dn_job *job_at(dn_retrain *r, int index)
{
    return &r->jobs[index % DN_RETRAIN_JOBS_KEPT];
}

/* A new queued job, due after the debounce delay. Called with the mutex held. */
static int queue_job(dn_retrain *r, double delay_s)
{
    int index = r->next_job++;
    dn_job *j = job_at(r, index);
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "job-%06d", index + 1);
    j->status = DN_JOB_QUEUED;
    j->created = wall_now();
    r->queued = index;
    r->due = dn_clock_now() + delay_s;
    pthread_cond_signal(&r->wake);
    return index;
}

void dn_retrain_notify(dn_retrain *r, char job_id[32], const char **status)
{
    pthread_mutex_lock(&r->mu);
    if (r->queued < 0)
        queue_job(r, r->cfg->retrain_debounce_ms / 1e3);
    else /* debounce: a burst of feedback makes one job, after the burst */
        r->due = dn_clock_now() + r->cfg->retrain_debounce_ms / 1e3;
    snprintf(job_id, 32, "%s", job_at(r, r->queued)->id);
    *status = "queued";
    pthread_mutex_unlock(&r->mu);
}

static void set_progress(void *ctx, const char *stage, int done, int total)
{
    dn_retrain *r = ctx;
    pthread_mutex_lock(&r->mu);
    dn_job *j = job_at(r, r->running);
    int new_stage = strcmp(j->stage, stage) != 0;
    snprintf(j->stage, sizeof j->stage, "%s", stage);
    j->done = done;
    j->total = total;
    pthread_mutex_unlock(&r->mu);
    if (new_stage)
        dn_log_msg(DN_LOG_INFO, "retrain_progress", "%s: %s (%d of %d)", j->id, stage, done, total);
}

static void report_skip(void *ctx, const char *path, const char *why)
{
    (void)ctx;
    (void)path;
    dn_log_msg(DN_LOG_WARN, "retrain_skip", "skipping an unreadable image: %s", why);
}

/* Everything a job trains and checks on. */
typedef struct job_data {
    char **base;      /* configured normal images */
    int n_base;
    char **fb_normal, **fb_anomaly;
    char **fb_mask; /* per feedback anomaly: its mask, or NULL */
    int n_fb_normal, n_fb_anomaly;
    char **normal, **check; /* normals to train on, and held out to check the model */
    int n_normal, n_check;
    char fingerprint[65];
} job_data;

static void job_data_free(job_data *d)
{
    dn_paths_free(d->base, d->n_base);
    dn_paths_free(d->fb_normal, d->n_fb_normal);
    dn_paths_free(d->fb_anomaly, d->n_fb_anomaly);
    if (d->fb_mask)
        dn_paths_free(d->fb_mask, d->n_fb_anomaly);
    free(d->normal);
    free(d->check);
}

/* The configured normal images: train/good of an MVTec-layout folder, else the folder's
 * images. */
static int base_images(const char *dir, char ***paths, int *n, dn_error *err)
{
    *paths = NULL;
    *n = 0;
    if (!dir[0])
        return DN_OK;
    char good[4200];
    struct stat st;
    snprintf(good, sizeof good, "%s/train/good", dir);
    return dn_dataset_list_images(stat(good, &st) == 0 ? good : dir, paths, n, err);
}

/* One normal image in DN_RETRAIN_VALIDATION_EVERY is held out, never trained on. */
static int split(job_data *d, dn_error *err)
{
    int n = d->n_base + d->n_fb_normal;
    d->normal = malloc(((size_t)n + 1) * sizeof *d->normal);
    d->check = malloc(((size_t)n + 1) * sizeof *d->check);
    if (!d->normal || !d->check)
        return dn_error_set(err, DN_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        char *p = i < d->n_base ? d->base[i] : d->fb_normal[i - d->n_base];
        if (n >= DN_RETRAIN_MIN_NORMALS && i % DN_RETRAIN_VALIDATION_EVERY == DN_RETRAIN_VALIDATION_EVERY - 1)
            d->check[d->n_check++] = p;
        else
            d->normal[d->n_normal++] = p;
    }
    if (n < DN_RETRAIN_MIN_NORMALS)
        return dn_error_set(err, DN_EINVAL,
                            "%d normal images; at least %d are needed: set train_data to a folder of "
                            "normal images, or send some with POST /feedback?label=normal",
                            n, DN_RETRAIN_MIN_NORMALS);
    return DN_OK;
}

static int gather(dn_retrain *r, job_data *d, dn_error *err)
{
    memset(d, 0, sizeof *d);
    int rc = dn_store_fingerprint(r->store, d->fingerprint, err);
    if (!rc)
        rc = base_images(r->cfg->train_data, &d->base, &d->n_base, err);
    if (!rc)
        rc = dn_store_list(r->store, 0, &d->fb_normal, &d->n_fb_normal, err);
    if (!rc)
        rc = dn_store_list(r->store, 1, &d->fb_anomaly, &d->n_fb_anomaly, err);
    if (!rc)
        rc = dn_store_masks(r->store, d->fb_anomaly, d->n_fb_anomaly, &d->fb_mask, err);
    return rc ? rc : split(d, err);
}

/* Share of images the model calls anomalous (scored through the cache). */
static int anomalous_share(const dn_model *m, dn_extractor *x, char **paths, int n, double *share,
                           dn_error *err)
{
    int hits = 0, rc = DN_OK, used = 0;
    for (int i = 0; i < n && !rc; i++) {
        dn_feats f;
        dn_score s;
        dn_feats_init(&f);
        dn_score_init(&s);
        if (dn_extractor_file(x, paths[i], 0, &f, NULL)) {
            report_skip(NULL, paths[i], x->err.msg); /* unreadable: not counted either way */
        } else if (!(rc = dn_model_score(m, &f, &s, err))) {
            hits += s.is_anomaly;
            used++;
        }
        dn_score_free(&s);
        dn_feats_free(&f);
    }
    *share = used ? (double)hits / used : 0.0;
    return rc;
}

/* The gate before a swap: labelled anomalies above the threshold, false alarms on held-out
 * normals within bound. Fails with the reason. */
static int check_model(dn_retrain *r, dn_job *j, const dn_model *m, dn_extractor *x, job_data *d,
                       dn_error *err)
{
    double recall = 1.0, fpr = 0.0;
    int rc = anomalous_share(m, x, d->fb_anomaly, d->n_fb_anomaly, &recall, err);
    if (!rc)
        rc = anomalous_share(m, x, d->check, d->n_check, &fpr, err);
    if (!d->n_fb_anomaly)
        recall = 1.0;
    if (rc)
        return rc;
    pthread_mutex_lock(&r->mu);
    j->has_checks = 1;
    j->recall = recall;
    j->fpr = fpr;
    pthread_mutex_unlock(&r->mu);
    if (recall < r->cfg->retrain_min_recall)
        return dn_error_set(err, DN_EINVAL,
                            "not swapped in: it scores %.0f%% of the labelled anomalies above its "
                            "threshold (at least %.0f%% required)",
                            recall * 100, r->cfg->retrain_min_recall * 100);
    if (fpr > r->cfg->retrain_max_fpr)
        return dn_error_set(err, DN_EINVAL,
                            "not swapped in: false-positive rate %.3f on %d held-out normals "
                            "exceeds %.3f",
                            fpr, d->n_check, r->cfg->retrain_max_fpr);
    return DN_OK;
}

static void write_state(dn_retrain *r, const char *fingerprint)
{
    char path[4200], line[80];
    snprintf(path, sizeof path, "%s/%s", r->cfg->data_dir, STATE_FILE);
    int n = snprintf(line, sizeof line, "%s\n", fingerprint);
    dn_error err;
    if (dn_file_write_atomic(path, line, (size_t)n, &err))
        dn_log_msg(DN_LOG_WARN, "retrain_state", "%s", err.msg);
}

static void read_state(dn_retrain *r, char out[65])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", r->cfg->data_dir, STATE_FILE);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f && !fgets(out, 65, f))
        out[0] = '\0';
    if (f)
        fclose(f);
}

static void record_result(dn_retrain *r, dn_job *j, const dn_model *m, const dn_train_files *files,
                          double seconds)
{
    pthread_mutex_lock(&r->mu);
    j->has_result = 1;
    snprintf(j->head, sizeof j->head, "%s", dn_head_type_name(m->type));
    snprintf(j->head_input, sizeof j->head_input, "%s", m->has_head ? dn_head_input_name(m->head_input) : "");
    j->tail = m->has_tail;
    j->defect_classifier = m->has_seg;
    j->normals = files->kept_normal;
    j->anomalies = files->kept_anomaly;
    j->seconds = seconds;
    pthread_mutex_unlock(&r->mu);
}

/* Trains, checks and publishes; returns the published version through j. */
static int train_job(dn_retrain *r, dn_job *j, dn_error *err)
{
    job_data d;
    int rc = gather(r, &d, err);
    dn_extractor x;
    char cache[4200];
    snprintf(cache, sizeof cache, "%s/cache", r->cfg->data_dir);
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.progress = set_progress;
    o.ctx = r;
    o.cancel = &r->stopping;
    double t0 = dn_clock_now();
    o.budget_s = r->cfg->retrain_budget_s;
    o.head_input = r->cfg->retrain_head_input;
    dn_model m;
    dn_model_init(&m);
    int have_x = !rc && !dn_extractor_init(&x, r->bb, o.size, cache);
    if (!rc && !have_x)
        rc = dn_error_set(err, x.err.code, "%s", x.err.msg);
    dn_train_files files = {d.normal, d.n_normal, d.fb_anomaly, d.n_fb_anomaly, report_skip, 0, 0, d.fb_mask};
    if (!rc)
        rc = dn_train_from_files(&m, &x, &files, &o, err);
    if (!rc)
        record_result(r, j, &m, &files, dn_clock_now() - t0);
    if (!rc)
        rc = check_model(r, j, &m, &x, &d, err);
    int version = 0;
    if (!rc)
        rc = dn_registry_publish(r->reg, &m, &version, err);
    if (!rc) {
        j->model_version = version;
        write_state(r, d.fingerprint);
    }
    pthread_mutex_lock(&r->mu);
    snprintf(r->seen_store, sizeof r->seen_store, "%s", d.fingerprint);
    pthread_mutex_unlock(&r->mu);
    dn_model_free(&m);
    if (have_x)
        dn_extractor_free(&x);
    job_data_free(&d);
    return rc;
}

static void run_job(dn_retrain *r, int index)
{
    dn_job *j = job_at(r, index);
    dn_error err;
    dn_error_clear(&err);
    dn_log_msg(DN_LOG_INFO, "retrain_start", "%s: training a new model", j->id);
    int rc = train_job(r, j, &err);
    pthread_mutex_lock(&r->mu);
    j->finished = wall_now();
    j->status = rc ? DN_JOB_FAILED : DN_JOB_SUCCEEDED;
    snprintf(j->reason, sizeof j->reason, "%s", rc ? err.msg : "");
    double seconds = j->finished - j->started;
    pthread_mutex_unlock(&r->mu);
    dn_prom_retrain(r->prom, rc ? "failed" : "succeeded", seconds);
    if (rc)
        dn_log_msg(DN_LOG_WARN, "retrain_failed", "%s: %s; the live model stays", j->id, err.msg);
    else
        dn_log_msg(DN_LOG_INFO, "retrain_done", "%s: version %d is live (%.1f s)", j->id,
                   j->model_version, seconds);
}

/* Feedback written by other processes (scorer replicas) shows in the store's fingerprint. */
static void poll_store(dn_retrain *r)
{
    char now[65];
    dn_error err;
    if (dn_store_fingerprint(r->store, now, &err))
        return;
    pthread_mutex_lock(&r->mu);
    if (strcmp(now, r->seen_store) && r->queued < 0 && r->running < 0) {
        snprintf(r->seen_store, sizeof r->seen_store, "%s", now);
        queue_job(r, r->cfg->retrain_debounce_ms / 1e3);
    }
    pthread_mutex_unlock(&r->mu);
}

static void wait_until(dn_retrain *r, double mono_deadline)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wait = mono_deadline - dn_clock_now();
    wait = wait < 0 ? 0 : wait;
    long long ns = ts.tv_nsec + (long long)(wait * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(&r->wake, &r->mu, &ts);
}

static void *retrain_main(void *arg)
{
    dn_retrain *r = arg;
    double next_poll = dn_clock_now();
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        double now = dn_clock_now();
        if (r->queued >= 0 && now >= r->due) {
            int index = r->running = r->queued;
            r->queued = -1;
            job_at(r, index)->status = DN_JOB_RUNNING;
            job_at(r, index)->started = wall_now();
            pthread_mutex_unlock(&r->mu);
            run_job(r, index);
            pthread_mutex_lock(&r->mu);
            r->running = -1;
            continue;
        }
        if (now >= next_poll) {
            pthread_mutex_unlock(&r->mu);
            poll_store(r);
            pthread_mutex_lock(&r->mu);
            next_poll = dn_clock_now() + r->cfg->watch_interval_ms / 1e3;
            continue;
        }
        wait_until(r, r->queued >= 0 && r->due < next_poll ? r->due : next_poll);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int dn_retrain_start(dn_retrain *r, const dn_config *cfg, dn_registry *reg, dn_store *store,
                     dn_prom *prom, const dn_backbone *bb, dn_error *err)
{
    memset(r, 0, sizeof *r);
    *r = (dn_retrain){.cfg = cfg, .reg = reg, .store = store, .prom = prom, .bb = bb, .queued = -1,
                      .running = -1};
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, NULL);
    char now[65];
    int rc = dn_store_fingerprint(store, now, err);
    if (rc)
        return rc;
    read_state(r, r->seen_store);
    if (dn_registry_live_version(reg) < 0) {
        queue_job(r, 0); /* no model yet: the first one */
        snprintf(r->seen_store, sizeof r->seen_store, "%s", now);
    } else if (strcmp(now, r->seen_store)) {
        queue_job(r, 0); /* feedback the live model has not seen (acknowledged, then a restart) */
        snprintf(r->seen_store, sizeof r->seen_store, "%s", now);
    }
    if (pthread_create(&r->thread, NULL, retrain_main, r))
        return dn_error_set(err, DN_ENOMEM, "cannot start the retraining thread");
    r->started = 1;
    return DN_OK;
}

void dn_retrain_stop(dn_retrain *r)
{
    if (!r->started)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->wake);
    r->started = 0;
}

static cJSON *time_json(double t)
{
    if (t <= 0)
        return cJSON_CreateNull();
    char buf[32];
    dn_log_time(t, 1, buf);
    return cJSON_CreateString(buf);
}

static cJSON *job_json(const dn_retrain *r, const dn_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "status", dn_job_status_name(j->status));
    cJSON_AddItemToObject(o, "reason", j->reason[0] ? cJSON_CreateString(j->reason) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "created", time_json(j->created));
    cJSON_AddItemToObject(o, "started", time_json(j->started));
    cJSON_AddItemToObject(o, "finished", time_json(j->finished));
    cJSON *p = cJSON_AddObjectToObject(o, "progress");
    cJSON_AddStringToObject(p, "stage", j->stage[0] ? j->stage : dn_job_status_name(j->status));
    cJSON_AddNumberToObject(p, "done", j->done);
    cJSON_AddNumberToObject(p, "total", j->total);
    if (j->has_result) {
        cJSON *t = cJSON_AddObjectToObject(o, "trained");
        cJSON_AddStringToObject(t, "head", j->head);
        if (j->head_input[0])
            cJSON_AddStringToObject(t, "head_input", j->head_input);
        else
            cJSON_AddNullToObject(t, "head_input");
        cJSON_AddBoolToObject(t, "tail", j->tail);
        cJSON_AddBoolToObject(t, "defect_classifier", j->defect_classifier);
        cJSON_AddNumberToObject(t, "normals", j->normals);
        cJSON_AddNumberToObject(t, "anomalies", j->anomalies);
        cJSON_AddNumberToObject(t, "seconds", round(j->seconds * 1000) / 1000);
        cJSON_AddNumberToObject(t, "budget_s", r->cfg->retrain_budget_s);
    } else {
        cJSON_AddNullToObject(o, "trained");
    }
    if (j->has_checks) {
        cJSON *c = cJSON_AddObjectToObject(o, "checks");
        cJSON_AddNumberToObject(c, "anomaly_recall", round(j->recall * 1e4) / 1e4);
        cJSON_AddNumberToObject(c, "false_positive_rate", round(j->fpr * 1e4) / 1e4);
        cJSON_AddNumberToObject(c, "max_false_positive_rate", r->cfg->retrain_max_fpr);
        cJSON_AddNumberToObject(c, "min_anomaly_recall", r->cfg->retrain_min_recall);
    } else {
        cJSON_AddNullToObject(o, "checks");
    }
    cJSON_AddItemToObject(o, "model_version",
                          j->model_version ? cJSON_CreateNumber(j->model_version) : cJSON_CreateNull());
    return o;
}

cJSON *dn_retrain_job_json(dn_retrain *r, const char *id)
{
    cJSON *o = NULL;
    if (!r->started)
        return NULL;
    pthread_mutex_lock(&r->mu);
    int first = r->next_job > DN_RETRAIN_JOBS_KEPT ? r->next_job - DN_RETRAIN_JOBS_KEPT : 0;
    for (int i = first; i < r->next_job && !o; i++)
        if (!strcmp(job_at(r, i)->id, id))
            o = job_json(r, job_at(r, i));
    pthread_mutex_unlock(&r->mu);
    return o;
}
