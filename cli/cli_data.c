/* Shared by train, score and eval: progress display, loading backbone features of image
 * lists through the cache, and the default cache location. */
#include "cli.h"

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

void cli_report_skip(void *ctx, const char *path, const char *why)
{
    (void)ctx;
    (void)path; /* the message names the file */
    fprintf(stderr, "devnet: skipping an unreadable image: %s\n", why);
}

int cli_features(dn_extractor *x, char *const *paths, int n, int n_aug, const char *stage,
                 dn_feats **out, int *n_kept)
{
    dn_files_opts o = {n_aug, n_kept != NULL, stage, cli_progress, cli_report_skip, NULL};
    return dn_extractor_files(x, paths, n, &o, out, NULL, n_kept) ? cli_fail(stage, &x->err) : CLI_OK;
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
