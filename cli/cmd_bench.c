/* devnet bench: forward-pass speed of the backbone's feature extractor, or with --model
 * the speed of a model's whole inference on decoded photos (resize to its input size, the
 * forward pass to the maps it reads, then its scoring: head, nearest-neighbour search,
 * patch map, p-value), which is what the service does per image besides decoding the
 * upload, HTTP and JSON. --image FILE (repeatable, taken in turn) gives the photos; without
 * it a synthetic noise image is used, whose patches are far from every normal one, so the
 * nearest-neighbour search prunes little and costs more than on real photos.
 *
 * --threads T runs T workers, each with its own forward context and one BLAS thread, on
 * the same synthetic image at once: the way devnetd uses the cores. A round is one pass
 * per worker; ms_per_image is the median round time divided by T (throughput), and
 * latency_ms the median time of a single pass inside a round. A round is timed from the
 * workers' own clocks (earliest start to latest end), not by the main thread: on a
 * machine with T cores that third thread may run late and see a round too short. */
#include "cli.h"

#include "dn_backbone.h"
#include "dn_features.h"
#include "dn_forward.h"
#include "dn_model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_WARMUP 3
#define BENCH_MAX_THREADS 64
#define BENCH_MAX_IMAGES 16

typedef struct bench {
    const dn_backbone *bb;
    const dn_model *model; /* NULL: the bare forward pass */
    const dn_image *images; /* the model's input photos, taken in turn */
    int n_images;
    const float *input;
    int size, iters, threads, tap;
    pthread_barrier_t start, end;
    double *pass_ms;          /* [iters * threads] */
    double *start_ms, *end_ms; /* [iters * threads]: each pass's clock readings */
    int failed;
} bench;

typedef struct worker {
    bench *b;
    int id;
} worker;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One inference of the model, as the service runs it. */
static int score_once(bench *b, dn_extractor *x, int it)
{
    dn_feats f;
    dn_score sc;
    dn_error err;
    dn_feats_init(&f);
    dn_score_init(&sc);
    int rc = dn_extractor_image(x, &b->images[(it + BENCH_WARMUP) % b->n_images], 0, &f);
    if (!rc)
        rc = dn_model_score(b->model, &f, &sc, &err);
    dn_score_free(&sc);
    dn_feats_free(&f);
    return rc;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    dn_forward fw;
    dn_extractor x;
    dn_forward_init(&fw, b->bb);
    if (b->model) {
        if (dn_extractor_init(&x, b->bb, b->size, NULL))
            b->failed = 1;
        x.mid_only = dn_model_mid_only(b->model);
        x.scales = b->model->scales;
    }
    dn_fmap out;
    for (int it = -BENCH_WARMUP; it < b->iters; it++) {
        pthread_barrier_wait(&b->start);
        double t0 = now_ms();
        if (!b->failed && (b->model ? score_once(b, &x, it)
                                    : dn_forward_run(&fw, b->input, b->size, b->size, &b->tap, 1, &out)))
            b->failed = 1;
        double t1 = now_ms();
        if (it >= 0) {
            int k = it * b->threads + w->id;
            b->pass_ms[k] = t1 - t0;
            b->start_ms[k] = t0;
            b->end_ms[k] = t1;
        }
        pthread_barrier_wait(&b->end);
    }
    dn_forward_free(&fw);
    if (b->model)
        dn_extractor_free(&x);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Multiply-adds x2 of every node up to `last` for an input of s x s. */
static double graph_flops(const dn_backbone *bb, int s, int last)
{
    int oh[DN_MAX_NODES], ow[DN_MAX_NODES];
    if (dn_graph_shapes(&bb->graph, s, s, oh, ow, NULL))
        return 0;
    double flops = 0;
    for (int i = 0; i <= last; i++) {
        const dn_node *n = &bb->graph.nodes[i];
        double pix = (double)oh[i] * ow[i];
        if (n->op == DN_OP_CONV)
            flops += 2.0 * pix * n->cout * n->kh * n->kw * n->cin;
        else if (n->op == DN_OP_DWCONV)
            flops += 2.0 * pix * n->cout * n->kh * n->kw;
    }
    return flops;
}

/* Runs the rounds from the main thread with the workers; fills round_ms[iters]. */
static int run_rounds(bench *b, double *round_ms)
{
    pthread_t tid[BENCH_MAX_THREADS];
    worker ws[BENCH_MAX_THREADS];
    pthread_barrier_init(&b->start, NULL, (unsigned)b->threads + 1);
    pthread_barrier_init(&b->end, NULL, (unsigned)b->threads + 1);
    for (int t = 0; t < b->threads; t++) {
        ws[t] = (worker){b, t};
        pthread_create(&tid[t], NULL, worker_main, &ws[t]);
    }
    for (int it = -BENCH_WARMUP; it < b->iters; it++) {
        pthread_barrier_wait(&b->start);
        pthread_barrier_wait(&b->end);
    }
    for (int t = 0; t < b->threads; t++)
        pthread_join(tid[t], NULL);
    for (int it = 0; it < b->iters; it++) {
        const double *s = b->start_ms + it * b->threads, *e = b->end_ms + it * b->threads;
        double first = s[0], last = e[0];
        for (int t = 1; t < b->threads; t++) {
            first = s[t] < first ? s[t] : first;
            last = e[t] > last ? e[t] : last;
        }
        round_ms[it] = last - first;
    }
    pthread_barrier_destroy(&b->start);
    pthread_barrier_destroy(&b->end);
    return b->failed;
}

static int parse_bench_args(int argc, char **argv, const char **backbone, const char **model,
                            const char **images, int *n_images, long *size, long *threads, long *iters,
                            int *json)
{
    for (int i = 1; i < argc; i++) {
        long *target = !strcmp(argv[i], "--size")      ? size
                       : !strcmp(argv[i], "--threads") ? threads
                       : !strcmp(argv[i], "--iters")   ? iters
                                                       : NULL;
        if (!strcmp(argv[i], "--json"))
            *json = 1;
        else if (!strcmp(argv[i], "--backbone") && i + 1 < argc)
            *backbone = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            *model = argv[++i];
        else if (!strcmp(argv[i], "--image") && i + 1 < argc) {
            if (*n_images == BENCH_MAX_IMAGES)
                return cli_usage("bench: at most %d --image", BENCH_MAX_IMAGES);
            images[(*n_images)++] = argv[++i];
        }
        else if (target && i + 1 < argc) {
            long hi = target == size ? 4096 : target == threads ? BENCH_MAX_THREADS : 100000;
            if (cli_int(argv[++i], 1, hi, target))
                return cli_usage("bench: %s takes a whole number from 1 to %ld", argv[i - 1], hi);
        } else
            return cli_usage("bench: unknown argument '%s'", argv[i]);
    }
    return CLI_OK;
}

/* A fixed synthetic photo of s x s pixels for --model. */
static int synthetic_image(dn_image *img, int s)
{
    img->width = img->height = s;
    img->rgb = malloc((size_t)s * s * 3);
    if (!img->rgb)
        return -1;
    uint64_t x = 7;
    for (size_t i = 0; i < (size_t)s * s * 3; i++, x = x * 6364136223846793005ull + 1442695040888963407ull)
        img->rgb[i] = (uint8_t)(x >> 56);
    return 0;
}

/* Decodes the --image files; 0 (after saying why) when one fails. */
static int load_images(dn_image *images, const char *const *paths, int n)
{
    for (int i = 0; i < n; i++) {
        dn_error err;
        if (dn_image_load(&images[i], paths[i], NULL, &err)) {
            cli_fail("bench: image", &err);
            return 0;
        }
    }
    return 1;
}

int cmd_bench(int argc, char **argv)
{
    const char *backbone = "build/backbone.safetensors", *model_path = NULL;
    const char *image_paths[BENCH_MAX_IMAGES];
    long size = 0, threads = 1, iters = 20;
    int json = 0, n_images = 0;
    int rc = parse_bench_args(argc, argv, &backbone, &model_path, image_paths, &n_images, &size, &threads,
                              &iters, &json);
    if (rc)
        return rc;
    if (n_images && !model_path)
        return cli_usage("bench: --image goes with --model");
    dn_backbone bb;
    if (cli_backbone(&bb, backbone))
        return CLI_FAIL;
    dn_model model;
    dn_image images[BENCH_MAX_IMAGES];
    dn_model_init(&model);
    for (int i = 0; i < BENCH_MAX_IMAGES; i++)
        dn_image_init(&images[i]);
    if (model_path) {
        if (dn_model_load(&model, model_path, &bb)) {
            cli_fail("bench: model", &model.err);
            dn_model_free(&model);
            dn_backbone_free(&bb);
            return CLI_FAIL;
        }
        if (size && size != model.size) {
            int takes = model.size;
            dn_model_free(&model);
            dn_backbone_free(&bb);
            return cli_usage("bench: %s takes %d pixels; leave out --size", model_path, takes);
        }
        size = model.size;
    }
    size = size ? size : 448;
    size_t n_in = (size_t)size * size * bb.graph.in_channels;
    float *input = malloc(n_in * sizeof *input);
    double *round_ms = malloc((size_t)iters * sizeof *round_ms);
    size_t n_pass = (size_t)iters * threads;
    double *pass_ms = malloc(n_pass * sizeof *pass_ms), *start_ms = malloc(n_pass * sizeof *start_ms);
    double *end_ms = malloc(n_pass * sizeof *end_ms);
    bench b = {.bb = &bb, .model = model_path ? &model : NULL, .images = images,
               .n_images = n_images ? n_images : 1, .input = input, .size = (int)size, .iters = (int)iters,
               .threads = (int)threads, .tap = dn_backbone_final_map(&bb), .pass_ms = pass_ms,
               .start_ms = start_ms, .end_ms = end_ms};
    rc = CLI_FAIL;
    int have_images = !model_path || (n_images ? load_images(images, image_paths, n_images)
                                               : !synthetic_image(&images[0], (int)size));
    if (input && round_ms && pass_ms && start_ms && end_ms && have_images) {
        uint64_t s = 42; /* a fixed synthetic image in [-1, 1] */
        for (size_t i = 0; i < n_in; i++, s = s * 6364136223846793005ull + 1442695040888963407ull)
            input[i] = (float)((s >> 40) & 0xffff) / 32767.5f - 1.0f;
        rc = run_rounds(&b, round_ms) ? CLI_FAIL : CLI_OK;
    }
    if (rc == CLI_OK) {
        double ms = median(round_ms, (int)iters) / (double)threads;
        double lat = median(pass_ms, (int)(iters * threads));
        /* a model's inference does more than the pass: GFLOP/s only for the bare pass */
        double gflops = model_path ? 0 : graph_flops(&bb, (int)size, b.tap) / (ms * 1e6);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("size %ld, threads %ld, iters %ld%s%s: %.2f ms/image (median), latency %.2f ms, ", size,
               threads, iters, model_path ? ", model " : "", model_path ? dn_head_type_name(model.type) : "",
               ms, lat);
        if (!model_path)
            printf("%.1f GFLOP/s, ", gflops);
        printf("peak RSS %.1f MB\n", ru.ru_maxrss / 1024.0);
        if (json)
            printf("{\"size\":%ld,\"threads\":%ld,\"iters\":%ld,\"model\":%s%s%s,\"ms_per_image\":%.3f,"
                   "\"latency_ms\":%.3f,\"gflops\":%.2f,\"peak_rss_mb\":%.1f}\n",
                   size, threads, iters, model_path ? "\"" : "", model_path ? dn_head_type_name(model.type) : "null",
                   model_path ? "\"" : "", ms, lat, gflops, ru.ru_maxrss / 1024.0);
    } else if (have_images) {
        fprintf(stderr, "devnet: bench: a %s failed (out of memory or input too small)\n",
                model_path ? "model inference" : "forward pass");
    }
    free(input);
    free(round_ms);
    free(pass_ms);
    free(start_ms);
    free(end_ms);
    for (int i = 0; i < BENCH_MAX_IMAGES; i++)
        dn_image_free(&images[i]);
    dn_model_free(&model);
    dn_backbone_free(&bb);
    return rc;
}
