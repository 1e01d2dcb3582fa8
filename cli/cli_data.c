/* Shared by train, score and eval: progress display, loading backbone features of image
 * lists through the cache, and the default cache location. */
#include "cli.h"

#include "dn_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A progress bar on stderr when stdout is a terminal; silent otherwise, so that piped
 * output stays parseable. */
void cli_progress(void *ctx, const char *stage, int done, int total)
{
    (void)ctx;
    if (!isatty(STDOUT_FILENO) || total <= 0)
        return;
    int width = 30, fill = (int)((long)width * done / total);
    fprintf(stderr, "\r%-14s [%.*s%*s] %d/%d", stage, fill, "##############################",
            width - fill, "", done, total);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

const char *cli_default_cache(char *buf, int len)
{
    const char *env = getenv("DEVNET_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (env && *env)
        snprintf(buf, (size_t)len, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, (size_t)len, "%s/devnet", xdg);
    else
        snprintf(buf, (size_t)len, "%s/.cache/devnet", home && *home ? home : "/tmp");
    return buf;
}

void cli_feats_free(dn_feats *f, int n)
{
    for (int i = 0; f && i < n; i++)
        dn_feats_free(&f[i]);
    free(f);
}

int cli_features(dn_extractor *x, char *const *paths, int n, int n_aug, const char *stage,
                 dn_feats **out, char (*sha)[65], int *n_kept)
{
    dn_feats *f = calloc((size_t)n * n_aug + 1, sizeof *f);
    if (!f) {
        fprintf(stderr, "devnet: out of memory for %d feature sets\n", n * n_aug);
        return CLI_FAIL;
    }
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int rc = DN_OK;
        for (int a = 0; a < n_aug && !rc; a++)
            rc = dn_extractor_file(x, paths[i], a, &f[(size_t)kept * n_aug + a], sha ? sha[kept] : NULL);
        cli_progress(NULL, stage, i + 1, n);
        if (!rc) {
            kept++;
            continue;
        }
        for (int a = 0; a < n_aug; a++)
            dn_feats_free(&f[(size_t)kept * n_aug + a]);
        if (!n_kept) {
            cli_feats_free(f, kept * n_aug);
            return cli_fail(paths[i], &x->err);
        }
        fprintf(stderr, "devnet: skipping an unreadable image: %s\n", x->err.msg);
    }
    if (n_kept)
        *n_kept = kept;
    if (n && !kept) {
        fprintf(stderr, "devnet: none of the %d %s could be read\n", n, stage);
        free(f);
        return CLI_FAIL;
    }
    *out = f;
    return CLI_OK;
}

void cli_set_hash(char (*sha)[65], int n, char out[65])
{
    dn_sha256 h;
    uint8_t d[32];
    dn_sha256_init(&h);
    for (int i = 0; i < n; i++)
        dn_sha256_update(&h, sha[i], 64);
    dn_sha256_final(&h, d);
    dn_sha256_hex(d, out);
}

const dn_feats **cli_pointers(dn_feats *f, int n)
{
    const dn_feats **p = malloc(((size_t)n + 1) * sizeof *p);
    for (int i = 0; p && i < n; i++)
        p[i] = &f[i];
    return p;
}

int cli_score_file(const dn_model *m, dn_extractor *x, const char *path, dn_image *img, dn_score *s,
                   dn_error *err)
{
    dn_feats f;
    dn_feats_init(&f);
    int rc = dn_image_load(img, path, NULL, err);
    if (!rc && (rc = dn_extractor_image(x, img, 0, &f)))
        *err = x->err;
    if (!rc)
        rc = dn_model_score(m, &f, s, err);
    dn_feats_free(&f);
    return rc;
}
