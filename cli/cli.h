/* The devnet command-line tool: one function per subcommand, shared helpers. */
#ifndef DN_CLI_H
#define DN_CLI_H

#include "dn_train.h"

/* Exit codes: 0 ok, 1 the work failed, 2 bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

int cmd_import_backbone(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* Prints "devnet: <what>: <message> (<code name>)" to stderr and returns CLI_FAIL. */
int cli_fail(const char *what, const dn_error *err);
/* Prints a usage error to stderr and returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a whole decimal integer within [lo, hi]; -1 when it is not one. */
int cli_int(const char *s, long lo, long hi, long *out);
/* Initialises and loads a backbone; prints the error and returns CLI_FAIL on failure. */
int cli_backbone(dn_backbone *bb, const char *path);
/* Reads an image file into the backbone's input at s x s (see dn_backbone_input). */
int cli_load_input(const dn_backbone *bb, const char *path, int s, float *input,
                   dn_error *err);
/* Default path of a file in ../shared (or $DEVNET_SHARED), or NULL when absent. */
const char *cli_shared_file(const char *rel, char *buf, int len);

/* Progress bar on stderr when stdout is a terminal (dn_train_opts.progress signature). */
void cli_progress(void *ctx, const char *stage, int done, int total);
/* $DEVNET_CACHE, else $XDG_CACHE_HOME/devnet, else ~/.cache/devnet. */
const char *cli_default_cache(char *buf, int len);
/* Features of n images in n_aug augmentations each (out[i * n_aug + a]; free with
 * dn_feats_free_all). With n_kept NULL any unreadable image fails the call (printed,
 * CLI_FAIL); otherwise unreadable images are skipped with a warning (dn_extractor_files). */
int cli_features(dn_extractor *x, char *const *paths, int n, int n_aug, const char *stage,
                 dn_feats **out, int *n_kept);
/* Warns on stderr that an unreadable image is skipped (dn_files_opts.skipped). */
void cli_report_skip(void *ctx, const char *path, const char *why);

/* What train and eval share on the command line (see cli_model_option in cmd_train.c). */
typedef struct cli_model_args {
    const char *data, *backbone, *cache;
    long shots;
    int no_masks; /* --no-masks: train on image labels only, ignoring the anomalies' masks */
    dn_train_opts opts;
} cli_model_args;
int cli_model_option(int argc, char **argv, int *i, cli_model_args *m);
/* Decodes path into img (caller-initialised; the caller frees it) and scores it with m. */
int cli_score_file(const dn_model *m, dn_extractor *x, const char *path, dn_image *img, dn_score *s,
                   dn_error *err);

#endif
