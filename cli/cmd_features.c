/* devnet features: the feature maps of named taps for one image, as raw float32 HWC. */
#include "cli.h"

#include "dn_backbone.h"
#include "dn_forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct features_args {
    const char *backbone, *image, *out, *dump_input;
    const char *taps[DN_MAX_TAPS];
    int n_taps;
    long size;
} features_args;

static int parse_features_args(int argc, char **argv, features_args *a)
{
    for (int i = 1; i < argc; i++) {
        int has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--backbone") && has_value)
            a->backbone = argv[++i];
        else if (!strcmp(argv[i], "-o") && has_value)
            a->out = argv[++i];
        else if (!strcmp(argv[i], "--dump-input") && has_value)
            a->dump_input = argv[++i];
        else if (!strcmp(argv[i], "--size") && has_value) {
            if (cli_int(argv[++i], 32, DN_MAX_INPUT_SIDE, &a->size))
                return cli_usage("features: --size takes 32..%d", DN_MAX_INPUT_SIDE);
        } else if (!strcmp(argv[i], "--tap") && has_value) {
            if (a->n_taps == DN_MAX_TAPS)
                return cli_usage("features: at most %d taps", DN_MAX_TAPS);
            a->taps[a->n_taps++] = argv[++i];
        } else if (argv[i][0] != '-' && !a->image)
            a->image = argv[i];
        else
            return cli_usage("features: unexpected argument '%s'", argv[i]);
    }
    if (!a->image)
        return cli_usage("features needs an IMAGE");
    if (!a->n_taps)
        a->taps[a->n_taps++] = "final";
    return CLI_OK;
}

static int write_floats(FILE *f, const float *x, size_t n)
{
    return fwrite(x, sizeof *x, n, f) == n ? 0 : -1;
}

static int dump_file(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    int rc = !f || write_floats(f, x, n);
    if (f && fclose(f))
        rc = 1;
    if (rc)
        fprintf(stderr, "devnet: cannot write %s\n", path);
    return rc ? CLI_FAIL : CLI_OK;
}

static int run_features(const dn_backbone *bb, const features_args *a, float *input)
{
    int taps[DN_MAX_TAPS], s = (int)a->size;
    for (int t = 0; t < a->n_taps; t++)
        if ((taps[t] = dn_backbone_resolve_tap(bb, a->taps[t])) < 0)
            return cli_usage("features: no tap '%s' in this backbone", a->taps[t]);
    dn_error err;
    dn_error_clear(&err);
    if (cli_load_input(bb, a->image, s, input, &err))
        return cli_fail(a->image, &err);
    if (a->dump_input && dump_file(a->dump_input, input, (size_t)s * s * 3))
        return CLI_FAIL;
    dn_forward fw;
    dn_forward_init(&fw, bb);
    dn_fmap maps[DN_MAX_TAPS];
    int rc = dn_forward_run(&fw, input, s, s, taps, a->n_taps, maps) ? cli_fail("forward", &fw.err)
                                                                      : CLI_OK;
    FILE *out = !rc && a->out ? fopen(a->out, "wb") : NULL;
    if (!rc && a->out && !out)
        rc = CLI_FAIL;
    for (int t = 0; !rc && t < a->n_taps; t++) {
        printf("%s\t%d\t%d\t%d\n", bb->graph.nodes[taps[t]].name, maps[t].h, maps[t].w, maps[t].c);
        if (out && write_floats(out, maps[t].data, (size_t)maps[t].h * maps[t].w * maps[t].c))
            rc = CLI_FAIL;
    }
    if (out && fclose(out))
        rc = CLI_FAIL;
    if (rc && a->out)
        fprintf(stderr, "devnet: cannot write %s\n", a->out);
    dn_forward_free(&fw);
    return rc;
}

int cmd_features(int argc, char **argv)
{
    features_args a = {.backbone = "build/backbone.safetensors", .size = 448};
    int rc = parse_features_args(argc, argv, &a);
    if (rc)
        return rc;
    dn_backbone bb;
    if (cli_backbone(&bb, a.backbone))
        return CLI_FAIL;
    float *input = malloc((size_t)a.size * a.size * 3 * sizeof *input);
    rc = input ? run_features(&bb, &a, input) : CLI_FAIL;
    free(input);
    dn_backbone_free(&bb);
    return rc;
}
