/* Model versions and the live model: publish, acquire and release across swaps, the keep
 * limit and numbering, damaged files skipped and reported, rollback, a second registry on
 * the same folder following publishes and rollbacks, and acquirers racing publishes. The
 * models are real but tiny: normality-only models trained on synthetic features. */
#include "test_util.h"

#include "dn_registry.h"
#include "dn_train.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

enum { N_IMG = 10, H8 = 4, C = 8, H16 = 2 };

typedef struct fixture {
    char root[64];
    dn_backbone bb; /* only its sha256: normality models read no backbone weights */
    float data[N_IMG][H8 * H8 * C + H16 * H16 * C];
    dn_feats feats[N_IMG];
} fixture;

static void setup(fixture *fx)
{
    dn_test_mkdtemp(fx->root, "dn_registry_");
    dn_backbone_init(&fx->bb);
    memset(fx->bb.sha256, 'a', 64);
    fx->bb.sha256[64] = '\0';
    uint64_t seed = 7;
    for (int i = 0; i < N_IMG; i++) {
        float *d = fx->data[i];
        for (int k = 0; k < H8 * H8 * C + H16 * H16 * C; k++)
            d[k] = dn_test_uniform(&seed, 0, 1);
        dn_feats_init(&fx->feats[i]);
        fx->feats[i].s8 = (dn_fmap){H8, H8, C, d};
        fx->feats[i].s16 = (dn_fmap){H16, H16, C, d + H8 * H8 * C};
    }
}

static void teardown(fixture *fx)
{
    dn_test_rmtree(fx->root);
}

/* A tiny trained model; its threshold is set to `mark`, which its file keeps, so that a
 * version can be recognised after a save and a load. */
static void make_model(fixture *fx, dn_model *m, float mark)
{
    const dn_feats *np[N_IMG];
    for (int i = 0; i < N_IMG; i++)
        np[i] = &fx->feats[i];
    dn_train_set set = {np, N_IMG, NULL, 0, 1, "test", NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.type = DN_HEAD_NORMALITY;
    o.size = 64;
    o.bank_max = 64;
    o.proj_dim = 0;
    dn_error err;
    dn_model_init(m);
    cr_assert_eq(dn_train(m, &set, &o, &fx->bb, &err), DN_OK, "%s", err.msg);
    m->threshold = mark;
}

static void open_registry(fixture *fx, dn_registry *r, int keep)
{
    dn_error err;
    cr_assert_eq(dn_registry_open(r, fx->root, NULL, keep, &err), DN_OK, "%s", err.msg);
}

static int publish(fixture *fx, dn_registry *r, float mark)
{
    dn_model m;
    make_model(fx, &m, mark);
    int version;
    dn_error err;
    cr_assert_eq(dn_registry_publish(r, &m, &version, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(m.n_cal, 0, "the registry took the model's contents");
    dn_model_free(&m);
    return version;
}

/* The live model's mark (its threshold), -1 when none. */
static float live_mark(dn_registry *r)
{
    dn_live *l = dn_registry_acquire(r);
    float mark = l ? l->model.threshold : -1;
    dn_registry_release(r, l);
    return mark;
}

static int exists(fixture *fx, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/models/%s", fx->root, name);
    return access(path, F_OK) == 0;
}

typedef struct reports {
    int n;
    char last[512];
} reports;

static void on_report(void *ctx, const char *path, const char *why)
{
    reports *rep = ctx;
    rep->n++;
    snprintf(rep->last, sizeof rep->last, "%s: %s", path, why);
}

static int refresh(dn_registry *r, reports *rep)
{
    int swapped;
    dn_error err;
    cr_assert_eq(dn_registry_refresh(r, &swapped, on_report, rep, &err), DN_OK, "%s", err.msg);
    return swapped;
}

Test(registry, publish_acquire_release)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 5);
    cr_assert_eq(dn_registry_live_version(&r), -1);
    cr_assert_null(dn_registry_acquire(&r), "nothing is live before a load or a publish");
    cr_assert_eq(publish(&fx, &r, 1.5f), 1);
    cr_assert(exists(&fx, "model-000001.safetensors"));
    dn_live *l = dn_registry_acquire(&r);
    cr_assert_not_null(l);
    cr_assert_eq(l->version, 1);
    cr_assert_float_eq(l->model.threshold, 1.5f, 1e-6);
    dn_score s;
    dn_error err;
    cr_assert_eq(dn_model_score(&l->model, &fx.feats[0], &s, &err), DN_OK, "%s", err.msg);
    dn_score_free(&s);
    dn_registry_release(&r, l);
    cr_assert_eq(dn_registry_live_version(&r), 1);
    dn_registry_close(&r);

    dn_registry again;
    open_registry(&fx, &again, 5);
    cr_assert_eq(dn_registry_load_newest(&again, NULL, NULL, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_registry_live_version(&again), 1);
    cr_assert_float_eq(live_mark(&again), 1.5f, 1e-6, "the file holds what was published");
    dn_registry_close(&again);
    teardown(&fx);
}

Test(registry, a_held_model_outlives_its_swap)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 5);
    publish(&fx, &r, 1);
    dn_live *old = dn_registry_acquire(&r);
    cr_assert_eq(publish(&fx, &r, 2), 2);
    dn_live *cur = dn_registry_acquire(&r);
    cr_assert(cur != old && cur->version == 2 && old->version == 1);
    /* The request that started on version 1 finishes on it (AddressSanitizer would see a
     * use after free here if the swap had freed it). */
    dn_score s;
    dn_error err;
    cr_assert_eq(dn_model_score(&old->model, &fx.feats[1], &s, &err), DN_OK, "%s", err.msg);
    dn_score_free(&s);
    cr_assert_float_eq(old->model.threshold, 1, 1e-6);
    cr_assert_eq(old->refs, 1, "only the request holds the old model now");
    dn_registry_release(&r, old); /* the last reference: freed here (LeakSanitizer checks) */
    dn_registry_release(&r, cur);
    cr_assert_eq(dn_registry_live_version(&r), 2);
    dn_registry_close(&r);
    teardown(&fx);
}

Test(registry, keep_limit_and_numbering)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 2);
    for (int i = 1; i <= 4; i++)
        cr_assert_eq(publish(&fx, &r, (float)i), i);
    cr_assert(!exists(&fx, "model-000001.safetensors") && !exists(&fx, "model-000002.safetensors"),
              "versions beyond keep are deleted, oldest first");
    cr_assert(exists(&fx, "model-000003.safetensors") && exists(&fx, "model-000004.safetensors"));
    int from, to;
    dn_error err;
    cr_assert_eq(dn_registry_rollback(&r, NULL, NULL, &from, &to, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(publish(&fx, &r, 5), 5, "a rejected number is never reused");

    dn_version_info *v;
    int n;
    cr_assert_eq(dn_registry_versions(&r, &v, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 3, "5 and 3 kept, 4 rejected (rejected files do not count)");
    cr_assert(v[0].version == 5 && v[0].live && !v[0].rejected);
    cr_assert_str_eq(v[0].file, "model-000005.safetensors");
    cr_assert(v[0].bytes > 0 && v[0].mtime > 0);
    cr_assert(v[1].version == 4 && v[1].rejected && !v[1].live);
    cr_assert_str_eq(v[1].file, "model-000004.safetensors.rejected");
    cr_assert(v[2].version == 3 && !v[2].rejected && !v[2].live);
    free(v);
    dn_registry_close(&r);
    teardown(&fx);
}

/* Overwrites `len` bytes of a file at offset `at`, or truncates it to `at` when len is 0. */
static void damage(fixture *fx, const char *name, long at, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/models/%s", fx->root, name);
    if (!len) {
        cr_assert_eq(truncate(path, at), 0);
        return;
    }
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, at, SEEK_SET);
    for (size_t i = 0; i < len; i++)
        fputc('#', f);
    fclose(f);
}

Test(registry, load_newest_skips_and_reports_damaged_files)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 5);
    for (int i = 1; i <= 3; i++)
        publish(&fx, &r, (float)i);
    dn_registry_close(&r);
    damage(&fx, "model-000003.safetensors", 100, 0);   /* truncated */
    damage(&fx, "model-000002.safetensors", 8, 40);    /* its header overwritten */

    open_registry(&fx, &r, 5);
    reports rep = {0};
    dn_error err;
    cr_assert_eq(dn_registry_load_newest(&r, on_report, &rep, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_registry_live_version(&r), 1, "the newest version that loads");
    cr_assert_float_eq(live_mark(&r), 1, 1e-6);
    cr_assert_eq(rep.n, 2, "each skipped file is reported");
    cr_assert(strstr(rep.last, "model-000002.safetensors"), "%s", rep.last);
    cr_assert_eq(refresh(&r, &rep), 0);
    cr_assert_eq(rep.n, 2, "a file that failed is not read and reported again");
    cr_assert_eq(publish(&fx, &r, 4), 4, "numbering continues past damaged files");
    dn_registry_close(&r);
    teardown(&fx);
}

Test(registry, no_version_no_live_model)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 5);
    dn_error err;
    cr_assert_eq(dn_registry_load_newest(&r, NULL, NULL, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_registry_live_version(&r), -1);
    int from, to;
    cr_assert_eq(dn_registry_rollback(&r, NULL, NULL, &from, &to, &err), DN_EINVAL);
    dn_version_info *v;
    int n;
    cr_assert_eq(dn_registry_versions(&r, &v, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 0);
    free(v);
    dn_registry_close(&r);
    teardown(&fx);
}

Test(registry, rollback_rejects_the_live_file)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 5);
    publish(&fx, &r, 1);
    publish(&fx, &r, 2);
    dn_live *held = dn_registry_acquire(&r);
    int from, to;
    dn_error err;
    cr_assert_eq(dn_registry_rollback(&r, NULL, NULL, &from, &to, &err), DN_OK, "%s", err.msg);
    cr_assert(from == 2 && to == 1, "from %d to %d", from, to);
    cr_assert(!exists(&fx, "model-000002.safetensors"));
    cr_assert(exists(&fx, "model-000002.safetensors.rejected"), "kept for forensics");
    cr_assert_float_eq(live_mark(&r), 1, 1e-6);
    cr_assert_float_eq(held->model.threshold, 2, 1e-6, "a request on version 2 finishes on it");
    dn_registry_release(&r, held);

    cr_assert_eq(dn_registry_rollback(&r, NULL, NULL, &from, &to, &err), DN_EINVAL,
                 "no older version");
    cr_assert(strstr(err.msg, "version 1 stays live"), "%s", err.msg);
    cr_assert(exists(&fx, "model-000001.safetensors"), "a refused rollback changes nothing");
    cr_assert_eq(dn_registry_live_version(&r), 1);
    dn_registry_close(&r);

    open_registry(&fx, &r, 5);
    cr_assert_eq(dn_registry_load_newest(&r, NULL, NULL, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_registry_live_version(&r), 1, "a rejected file is never loaded again");
    dn_registry_close(&r);
    teardown(&fx);
}

Test(registry, refresh_follows_another_process)
{
    fixture fx;
    setup(&fx);
    dn_registry trainer, replica;
    open_registry(&fx, &trainer, 5);
    open_registry(&fx, &replica, 5);
    reports rep = {0};
    cr_assert_eq(refresh(&replica, &rep), 0, "nothing to serve yet");
    publish(&fx, &trainer, 1);
    cr_assert_eq(refresh(&replica, &rep), 1);
    cr_assert_eq(dn_registry_live_version(&replica), 1);
    cr_assert_eq(refresh(&replica, &rep), 0, "nothing changed");
    publish(&fx, &trainer, 2);
    dn_live *held = dn_registry_acquire(&replica);
    cr_assert_eq(refresh(&replica, &rep), 1, "a newer publish");
    cr_assert_eq(dn_registry_live_version(&replica), 2);
    cr_assert_float_eq(live_mark(&replica), 2, 1e-6);
    cr_assert_eq(held->version, 1);
    dn_registry_release(&replica, held);

    int from, to;
    dn_error err;
    cr_assert_eq(dn_registry_rollback(&trainer, NULL, NULL, &from, &to, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(refresh(&replica, &rep), 1, "the live version was rejected elsewhere");
    cr_assert_eq(dn_registry_live_version(&replica), 1);
    cr_assert_eq(refresh(&replica, &rep), 0);
    cr_assert_eq(rep.n, 0);

    /* A rollback in the replica: the trainer's next publish must not reuse the number. */
    publish(&fx, &trainer, 3);
    cr_assert_eq(refresh(&replica, &rep), 1);
    cr_assert_eq(dn_registry_rollback(&replica, NULL, NULL, &from, &to, &err), DN_OK, "%s", err.msg);
    cr_assert(from == 3 && to == 1);
    cr_assert_eq(publish(&fx, &trainer, 4), 4);
    cr_assert_eq(refresh(&replica, &rep), 1);
    cr_assert_eq(dn_registry_live_version(&replica), 4);
    dn_registry_close(&trainer);
    dn_registry_close(&replica);
    teardown(&fx);
}

Test(registry, explicit_file_is_version_0)
{
    fixture fx;
    setup(&fx);
    dn_model m;
    make_model(&fx, &m, 9);
    char path[128];
    snprintf(path, sizeof path, "%s/given.model", fx.root);
    dn_error err;
    cr_assert_eq(dn_model_save(&m, path, &err), DN_OK, "%s", err.msg);
    dn_model_free(&m);
    dn_registry r, other;
    open_registry(&fx, &r, 5);
    open_registry(&fx, &other, 5);
    cr_assert_eq(dn_registry_load_file(&r, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_registry_live_version(&r), 0);
    cr_assert_float_eq(live_mark(&r), 9, 1e-6);
    publish(&fx, &other, 1);
    reports rep = {0};
    cr_assert_eq(refresh(&r, &rep), 0, "refresh never replaces an explicit file");
    int from, to;
    cr_assert_eq(dn_registry_rollback(&r, NULL, NULL, &from, &to, &err), DN_EINVAL);
    cr_assert(access(path, F_OK) == 0, "an explicit file is never rejected");
    cr_assert_eq(dn_registry_load_file(&r, "/nonexistent/x.model", &err), DN_EIO);
    cr_assert_eq(dn_registry_live_version(&r), 0, "a failed load changes nothing");
    cr_assert_eq(dn_registry_load_newest(&r, NULL, NULL, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_registry_live_version(&r), 1, "load_newest does replace it");
    dn_registry_close(&r);
    dn_registry_close(&other);
    teardown(&fx);
}

Test(registry, open_refusals_and_abandoned_publish_files)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    dn_error err;
    cr_assert_eq(dn_registry_open(&r, fx.root, NULL, 0, &err), DN_EINVAL);
    open_registry(&fx, &r, 1);
    dn_registry_close(&r);
    char old[128], recent[128];
    snprintf(old, sizeof old, "%s/models/.publish.1.0.safetensors.tmp.1", fx.root);
    snprintf(recent, sizeof recent, "%s/models/.publish.1.1.safetensors", fx.root);
    FILE *f = fopen(old, "wb");
    fclose(f);
    f = fopen(recent, "wb");
    fclose(f);
    struct timespec t[2] = {{time(NULL) - 2 * DN_REGISTRY_STALE_SECONDS, 0},
                            {time(NULL) - 2 * DN_REGISTRY_STALE_SECONDS, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, old, t, 0), 0);
    open_registry(&fx, &r, 1);
    cr_assert(access(old, F_OK) != 0, "a crashed publish's file is removed");
    cr_assert(access(recent, F_OK) == 0, "a publish that may be in progress is not");
    dn_version_info *v;
    int n;
    cr_assert_eq(dn_registry_versions(&r, &v, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 0, "publish files are not versions");
    free(v);
    dn_registry_close(&r);
    teardown(&fx);
}

Test(registry, failed_publish_keeps_the_model_and_the_live_one)
{
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 5);
    publish(&fx, &r, 1);
    char models[128];
    snprintf(models, sizeof models, "%s/models", fx.root);
    dn_test_rmtree(models); /* the folder is gone: saving fails */
    dn_model m;
    make_model(&fx, &m, 2);
    int n_cal = m.n_cal, version = -1;
    dn_error err;
    cr_assert_eq(dn_registry_publish(&r, &m, &version, &err), DN_EIO);
    cr_assert(strstr(err.msg, models), "%s", err.msg);
    cr_assert(m.n_cal == n_cal && n_cal > 0, "the caller still owns its model");
    cr_assert_eq(dn_registry_live_version(&r), 1);
    cr_assert_float_eq(live_mark(&r), 1, 1e-6);
    dn_model_free(&m);
    dn_registry_close(&r);
    teardown(&fx);
}

/* ---- acquirers racing publishes ---- */

typedef struct racer {
    dn_registry *r;
    fixture *fx;
    atomic_int *stop;
    int acquired, errors;
} racer;

static void *acquire_loop(void *arg)
{
    racer *w = arg;
    int last = 0;
    while (!atomic_load(w->stop)) {
        dn_live *l = dn_registry_acquire(w->r);
        if (!l)
            continue;
        dn_score s;
        dn_score_init(&s);
        dn_error err;
        /* Versions only grow here; each model is whole: its mark is its version. */
        w->errors += l->version < last || (int)l->model.threshold != l->version;
        w->errors += dn_model_score(&l->model, &w->fx->feats[w->acquired % N_IMG], &s, &err) != DN_OK;
        dn_score_free(&s);
        last = l->version;
        w->acquired++;
        dn_registry_release(w->r, l);
    }
    return NULL;
}

Test(registry, acquirers_race_publishes, .timeout = 120)
{
    enum { THREADS = 4, PUBLISHES = 24 };
    fixture fx;
    setup(&fx);
    dn_registry r;
    open_registry(&fx, &r, 3);
    publish(&fx, &r, 1);
    atomic_int stop = 0;
    racer w[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (racer){.r = &r, .fx = &fx, .stop = &stop};
        cr_assert_eq(pthread_create(&th[t], NULL, acquire_loop, &w[t]), 0);
    }
    for (int v = 2; v <= PUBLISHES; v++)
        cr_assert_eq(publish(&fx, &r, (float)v), v);
    atomic_store(&stop, 1);
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(w[t].errors, 0, "thread %d saw %d inconsistent models", t, w[t].errors);
    }
    cr_assert_eq(dn_registry_live_version(&r), PUBLISHES);
    dn_version_info *v;
    int n;
    dn_error err;
    cr_assert_eq(dn_registry_versions(&r, &v, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    free(v);
    dn_registry_close(&r);
    teardown(&fx);
}
