/* devnet import-backbone and devnet classify. */
#include "cli.h"

#include "dn_backbone.h"
#include "dn_forward.h"
#include "dn_tflite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_import_backbone(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] != '-' && !in)
            in = argv[i];
        else
            return cli_usage("import-backbone: unexpected argument '%s'", argv[i]);
    }
    if (!in || !out)
        return cli_usage("import-backbone needs IN.tflite and -o OUT.safetensors");
    dn_tflite_model m;
    dn_tflite_init(&m);
    if (dn_tflite_import_file(&m, in, NULL))
        return cli_fail(in, &m.err);
    dn_error err;
    dn_error_clear(&err);
    int rc = dn_backbone_save(&m.graph, m.source_sha256, out, &err);
    if (!rc)
        printf("%s: %d nodes, %zu weights, source sha256 %s\n", out, m.graph.n_nodes, m.n_weights,
               m.source_sha256);
    dn_tflite_free(&m);
    return rc ? cli_fail(out, &err) : CLI_OK;
}

typedef struct labels {
    char **names;
    int n;
} labels;

static void labels_free(labels *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
}

static int labels_load(labels *l, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    l->names = NULL;
    l->n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char **grown = realloc(l->names, (size_t)(l->n + 1) * sizeof *grown);
        if (!grown)
            break;
        l->names = grown;
        l->names[l->n++] = strdup(line);
    }
    fclose(f);
    return 0;
}

/* Probabilities of one image: decode, resize the whole image to the native size, run. */
static int classify_one(dn_forward *fw, const dn_backbone *bb, const char *path, float *input,
                        const float **probs, dn_error *err)
{
    int s = bb->graph.native_size, tap = bb->graph.n_nodes - 1;
    int rc = cli_load_input(bb, path, s, input, err);
    if (rc)
        return rc;
    dn_fmap out;
    rc = dn_forward_run(fw, input, s, s, &tap, 1, &out);
    if (rc)
        return dn_error_set(err, rc, "%s", fw->err.msg);
    *probs = out.data;
    return DN_OK;
}

static void print_top5(const char *path, const float *p, int n, const labels *l)
{
    int top[5] = {-1, -1, -1, -1, -1};
    for (int i = 0; i < n; i++)
        for (int r = 0; r < 5; r++)
            if (top[r] < 0 || p[i] > p[top[r]]) {
                memmove(top + r + 1, top + r, (size_t)(4 - r) * sizeof *top);
                top[r] = i;
                break;
            }
    for (int r = 0; r < 5 && top[r] >= 0; r++)
        printf("%s\t%d\t%d\t%.4f\t%s\n", path, r + 1, top[r], p[top[r]],
               top[r] < l->n ? l->names[top[r]] : "?");
}

int cmd_classify(int argc, char **argv)
{
    const char *backbone = "build/backbone.safetensors", *labels_path = NULL;
    char shared_buf[4096];
    int first_image = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backbone") && i + 1 < argc)
            backbone = argv[++i];
        else if (!strcmp(argv[i], "--labels") && i + 1 < argc)
            labels_path = argv[++i];
        else if (argv[i][0] == '-')
            return cli_usage("classify: unknown option '%s'", argv[i]);
        else if (!first_image)
            first_image = i;
    }
    if (!first_image)
        return cli_usage("classify needs at least one IMAGE");
    if (!labels_path)
        labels_path = cli_shared_file("models/imagenet_labels.txt", shared_buf, sizeof shared_buf);
    labels l = {0};
    if (labels_path && labels_load(&l, labels_path))
        fprintf(stderr, "devnet: cannot read labels %s; printing indices only\n", labels_path);
    dn_backbone bb;
    dn_backbone_init(&bb);
    if (dn_backbone_load(&bb, backbone)) {
        labels_free(&l);
        return cli_fail(backbone, &bb.err);
    }
    if (bb.graph.n_classes < 1) {
        dn_backbone_free(&bb);
        labels_free(&l);
        fprintf(stderr, "devnet: %s has no classifier\n", backbone);
        return CLI_FAIL;
    }
    int s = bb.graph.native_size, failed = 0;
    float *input = malloc((size_t)s * s * 3 * sizeof *input);
    dn_forward fw;
    dn_forward_init(&fw, &bb);
    for (int i = first_image; i < argc && input; i++) {
        const float *probs = NULL;
        dn_error err;
        dn_error_clear(&err);
        if (argv[i][0] == '-') {
            i++; /* an option and its value, handled above */
            continue;
        }
        if (classify_one(&fw, &bb, argv[i], input, &probs, &err))
            failed |= cli_fail(argv[i], &err);
        else
            print_top5(argv[i], probs, bb.graph.n_classes, &l);
    }
    dn_forward_free(&fw);
    free(input);
    dn_backbone_free(&bb);
    labels_free(&l);
    return input ? failed : CLI_FAIL;
}
