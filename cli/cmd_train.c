/* devnet train: a model from an MVTec-layout folder (or normals plus a folder of
 * labelled anomalies). */
#include "cli.h"

#include "dn_dataset.h"
#include "dn_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct train_args {
    cli_model_args m;
    const char *anomalies, *out;
    long seed;
} train_args;

/* Options shared with eval: --data, --shots, --head, --head-input, --size, --scales, --tail, --no-masks,
 * --threshold, --quantile, --cache, --no-cache, --backbone. Returns 1 if argv[*i] was one of them
 * (consuming its value), 0 if not, or -1 on a bad value (after printing why). */
int cli_model_option(int argc, char **argv, int *i, cli_model_args *m)
{
    dn_train_opts *o = &m->opts;
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    if (!strcmp(a, "--no-cache")) {
        m->cache = "";
        return 1;
    }
    if (!strcmp(a, "--tail")) {
        o->tail = 1;
        return 1;
    }
    if (!strcmp(a, "--no-masks")) {
        m->no_masks = 1;
        return 1;
    }
    if (!v)
        return 0;
    if (!strcmp(a, "--head")) {
        if (dn_head_type_parse(v, &o->type))
            return cli_usage("--head takes devnet, normality or fusion"), -1;
    } else if (!strcmp(a, "--head-input")) {
        if (dn_head_input_parse(v, &o->head_input))
            return cli_usage("--head-input takes final or patches"), -1;
    } else if (!strcmp(a, "--size")) {
        if (cli_int(v, 32, DN_MAX_INPUT_SIDE, &n))
            return cli_usage("--size takes 32..%d", DN_MAX_INPUT_SIDE), -1;
        o->size = (int)n;
    } else if (!strcmp(a, "--threshold")) {
        if (strcmp(v, "quantile") && strcmp(v, "maxf1"))
            return cli_usage("--threshold takes quantile or maxf1"), -1;
        o->rule = strcmp(v, "quantile") ? DN_THRESHOLD_MAXF1 : DN_THRESHOLD_QUANTILE;
    } else if (!strcmp(a, "--quantile")) {
        char *end;
        o->quantile = strtof(v, &end);
        if (*end || !(o->quantile > 0 && o->quantile < 1))
            return cli_usage("--quantile takes a number in (0, 1)"), -1;
    } else if (!strcmp(a, "--scales")) {
        if (cli_int(v, 1, 2, &n))
            return cli_usage("--scales takes 1 or 2"), -1;
        o->scales = (int)n;
    } else if (!strcmp(a, "--cache")) {
        m->cache = v;
    } else if (!strcmp(a, "--backbone")) {
        m->backbone = v;
    } else if (!strcmp(a, "--data")) {
        m->data = v;
    } else if (!strcmp(a, "--shots")) {
        if (cli_int(v, 0, 1000, &m->shots))
            return cli_usage("--shots takes 0..1000"), -1;
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

static int parse_train(int argc, char **argv, train_args *a)
{
    for (int i = 1; i < argc; i++) {
        int used = cli_model_option(argc, argv, &i, &a->m);
        if (used < 0)
            return CLI_USAGE;
        if (used)
            continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--anomalies") && v)
            a->anomalies = argv[++i];
        else if (!strcmp(argv[i], "-o") && v)
            a->out = argv[++i];
        else if (!strcmp(argv[i], "--seed") && v && !cli_int(v, 0, 1L << 40, &a->seed))
            i++;
        else
            return cli_usage("train: unexpected or bad argument '%s'", argv[i]);
    }
    if (!a->m.data || !a->out)
        return cli_usage("train needs --data DIR and -o MODEL");
    if (a->m.shots && a->anomalies)
        return cli_usage("train: --shots draws anomalies from the test set; --anomalies gives them: not both");
    a->m.opts.seed = (uint64_t)a->seed;
    return CLI_OK;
}

/* The labelled anomalies: drawn from the test set (--shots) or listed from a folder. */
/* The labelled anomalies: the --anomalies folder (no masks), or --shots drawn from the
 * dataset's test anomalies with their masks where it has them (*masks NULL otherwise). */
static int anomaly_paths(const train_args *a, const dn_dataset *d, char ***paths, char ***masks, int *n)
{
    *masks = NULL;
    dn_error err;
    dn_error_clear(&err);
    if (a->anomalies) {
        if (dn_dataset_list_images(a->anomalies, paths, n, &err))
            return cli_fail(a->anomalies, &err);
        if (*n == 0)
            dn_error_set(&err, DN_EINVAL, "no images (.png, .jpg, .jpeg) in the anomalies folder");
        return *n ? CLI_OK : cli_fail(a->anomalies, &err);
    }
    int *drawn = malloc(((size_t)a->m.shots + 1) * sizeof *drawn), *rest = malloc(((size_t)d->n_test + 1) * sizeof *rest), n_rest;
    *paths = calloc((size_t)a->m.shots + 1, sizeof **paths);
    int rc = drawn && rest && *paths ? dn_protocol_draw(d, (int)a->m.shots, (uint64_t)a->seed, drawn, rest, &n_rest, &err)
                                     : dn_error_set(&err, DN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < a->m.shots; i++)
        (*paths)[i] = strdup(d->test[drawn[i]].path);
    if (!rc && d->has_masks && !a->m.no_masks && (*masks = calloc((size_t)a->m.shots + 1, sizeof **masks)))
        for (int i = 0; i < a->m.shots; i++)
            (*masks)[i] = d->test[drawn[i]].mask_path ? strdup(d->test[drawn[i]].mask_path) : NULL;
    *n = rc ? 0 : (int)a->m.shots;
    free(drawn);
    free(rest);
    return rc ? cli_fail(a->m.data, &err) : CLI_OK;
}

static int train_from(const train_args *a, dn_extractor *x, const dn_dataset *d)
{
    char **apaths = NULL, **masks = NULL, **npaths = malloc(((size_t)d->n_train + 1) * sizeof *npaths);
    int n_anom = 0, rc = npaths ? anomaly_paths(a, d, &apaths, &masks, &n_anom) : CLI_FAIL;
    for (int i = 0; npaths && i < d->n_train; i++)
        npaths[i] = d->train[i].path;
    /* an unreadable training image is skipped with a warning, not the end of training */
    dn_train_files files = {npaths, d->n_train, apaths, n_anom, cli_report_skip, 0, 0, masks};
    dn_model m;
    dn_model_init(&m);
    dn_error err;
    dn_error_clear(&err);
    if (!rc && dn_train_from_files(&m, x, &files, &a->m.opts, &err))
        rc = cli_fail("train", &err);
    if (!rc && dn_model_save(&m, a->out, &err))
        rc = cli_fail(a->out, &err);
    if (!rc)
        printf("%s\thead %s\thead_input %s\tnormals %d\tanomalies %d\tthreshold %.3f\n", a->out,
               dn_head_type_name(m.type), m.has_head ? dn_head_input_name(m.head_input) : "-",
               files.kept_normal, files.kept_anomaly, m.threshold);
    dn_model_free(&m);
    dn_paths_free(apaths, n_anom);
    if (masks)
        dn_paths_free(masks, n_anom);
    free(npaths);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    char cache_buf[4096];
    train_args a = {.m.backbone = "build/backbone.safetensors", .seed = 1};
    dn_train_opts_default(&a.m.opts);
    a.m.opts.progress = cli_progress;
    a.m.cache = cli_default_cache(cache_buf, sizeof cache_buf);
    int rc = parse_train(argc, argv, &a);
    if (rc)
        return rc;
    dn_backbone bb;
    if (cli_backbone(&bb, a.m.backbone))
        return CLI_FAIL;
    dn_dataset d;
    dn_dataset_init(&d);
    dn_extractor x;
    rc = dn_extractor_init(&x, &bb, a.m.opts.size, a.m.cache) ? cli_fail("features", &x.err) : CLI_OK;
    x.scales = a.m.opts.scales;
    if (!rc && dn_dataset_open(&d, a.m.data))
        rc = cli_fail(a.m.data, &d.err);
    if (!rc)
        rc = train_from(&a, &x, &d);
    dn_dataset_free(&d);
    dn_extractor_free(&x);
    dn_backbone_free(&bb);
    return rc;
}
