/* devnet: the command-line client of the devnet library. */
#include "cli.h"

#include "dn_backbone.h"

#include <cblas.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"import-backbone", cmd_import_backbone, "IN.tflite -o OUT.safetensors   convert a TFLite CNN"},
    {"classify", cmd_classify, "--backbone B [--labels L] IMAGE...   top-5 ImageNet labels"},
    {"features", cmd_features, "--backbone B [--size S] [--tap T]... [-o OUT.f32] [--dump-input IN.f32] IMAGE"},
    {"train", cmd_train, "--data DIR [--shots K] [--seed S] [--anomalies DIR] [--head H] -o MODEL"},
    {"score", cmd_score, "--model MODEL [--heatmap OUT.png] [--json] IMAGE..."},
    {"eval", cmd_eval, "--data DIR [--shots 10] [--seeds 1,2,3] [--head H] [--json FILE]"},
    {"bench", cmd_bench, "--backbone B [--size S | --model M [--image F]...] [--threads T] [--iters N] [--json]   forward-pass (or model) speed"},
};

#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: devnet COMMAND [ARGS]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].help);
}

int cli_fail(const char *what, const dn_error *err)
{
    fprintf(stderr, "devnet: %s: %s (%s)\n", what, err->msg[0] ? err->msg : "failed",
            dn_error_name(err->code));
    return CLI_FAIL;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("devnet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see devnet --help)\n", stderr);
    va_end(ap);
    return CLI_USAGE;
}

int cli_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

const char *cli_shared_file(const char *rel, char *buf, int len)
{
    const char *env = getenv("DEVNET_SHARED");
    snprintf(buf, (size_t)len, "%s/%s", env && *env ? env : "../shared", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

int cli_backbone(dn_backbone *bb, const char *path)
{
    dn_backbone_init(bb);
    return dn_backbone_load(bb, path) ? cli_fail("backbone", &bb->err) : CLI_OK;
}

int cli_load_input(const dn_backbone *bb, const char *path, int s, float *input, dn_error *err)
{
    dn_image img;
    dn_image_init(&img);
    int rc = dn_image_load(&img, path, NULL, err);
    if (!rc)
        rc = dn_backbone_input(bb, &img, s, s, input, err);
    dn_image_free(&img);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    /* One BLAS thread per worker: the setter is process-wide (PLATFORM-NOTES.md), and
     * parallelism comes from our own threads. */
    openblas_set_num_threads(1);
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    return cli_usage("unknown command '%s'", argv[1]);
}
