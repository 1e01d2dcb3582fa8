/* The devnet command-line tool: one function per subcommand, shared helpers. */
#ifndef DN_CLI_H
#define DN_CLI_H

#include "dn_error.h"

/* Exit codes: 0 ok, 1 the work failed, 2 bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

int cmd_import_backbone(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_features(int argc, char **argv);

/* Prints "devnet: <what>: <message> (<code name>)" to stderr and returns CLI_FAIL. */
int cli_fail(const char *what, const dn_error *err);
/* Prints a usage error to stderr and returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a whole decimal integer within [lo, hi]; -1 when it is not one. */
int cli_int(const char *s, long lo, long hi, long *out);
struct dn_backbone;
/* Reads an image file into the backbone's input at s x s (see dn_backbone_input). */
int cli_load_input(const struct dn_backbone *bb, const char *path, int s, float *input,
                   dn_error *err);
/* Default path of a file in ../shared (or $DEVNET_SHARED), or NULL when absent. */
const char *cli_shared_file(const char *rel, char *buf, int len);

#endif
