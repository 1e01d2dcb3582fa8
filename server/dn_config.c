#include "dn_config.h"

#include "dn_limits.h"
#include "dn_log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum key_type {
    K_LISTEN, /* HOST:PORT into listen_host and port */
    K_STR,
    K_SECRET, /* a string the JSON dump does not show */
    K_INT,
    K_LONG,
    K_SIZE,   /* size_t, with an optional K/M/G suffix */
    K_DOUBLE,
    K_BOOL,   /* int 0/1 */
    K_ROLE,
    K_LEVEL,  /* a dn_log level name, kept as its canonical name */
    K_SHA256, /* 64 hexadecimal digits (kept in lower case) or empty */
    K_HEAD_INPUT, /* a dn_head_input name */
} key_type;

typedef struct setting {
    const char *name;
    key_type type;
    size_t off, cap;   /* the field's offset and size in dn_config */
    double min, max;   /* numeric range, inclusive */
    const char *def;   /* the default as written in a file: defaults go through the parser */
    const char *help;
} setting;

#define FIELD(f) offsetof(dn_config, f), sizeof(((dn_config *)0)->f)

/* The one table of settings, in dn_config's order. The max_pixels default is
 * DN_DEFAULT_MAX_PIXELS spelled out (a test checks that they agree). */
static const setting keys[] = {
    {"listen", K_LISTEN, FIELD(listen_host), 0, 0, "127.0.0.1:8080",
     "HOST:PORT to listen on; [::1]:8080 for IPv6; port 0 picks any free port"},
    {"workers", K_INT, FIELD(workers), 0, 1024, "0", "scoring worker threads; 0 = one per online core"},
    {"io_threads", K_INT, FIELD(io_threads), 1, 64, "2", "HTTP polling threads (libmicrohttpd)"},
    {"model", K_STR, FIELD(model), 0, 0, "",
     "model file to serve; empty = the newest good version in data_dir/models"},
    {"data_dir", K_STR, FIELD(data_dir), 0, 0, "./devnet-data",
     "where model versions, feedback and jobs are kept"},
    {"backbone", K_STR, FIELD(backbone), 0, 0, "build/backbone.safetensors",
     "the converted backbone (devnet import-backbone)"},
    {"backbone_sha256", K_SHA256, FIELD(backbone_sha256), 0, 0, "",
     "sha256 the backbone file must have, else the daemon refuses to start; empty = not checked"},
    {"train_data", K_STR, FIELD(train_data), 0, 0, "",
     "normal training images: an MVTec-layout folder (its train/good) or a folder of images; empty = none"},
    {"api_key", K_SECRET, FIELD(api_key), 0, 0, "", "key the write and admin endpoints require; empty = none"},
    {"role", K_ROLE, FIELD(role), 0, 0, "all",
     "all (score and retrain), scorer (score, follow new model versions) or trainer (retrain only)"},
    {"max_body_bytes", K_SIZE, FIELD(max_body_bytes), 1024, 4294967296.0, "32M", "largest request body accepted"},
    {"max_pixels", K_LONG, FIELD(max_pixels), 1, (double)DN_MAX_IMAGE_SIDE * DN_MAX_IMAGE_SIDE, "40000000",
     "largest decoded image, width*height"},
    {"max_batch", K_INT, FIELD(max_batch), 1, DN_API_MAX_BATCH, "16", "images per /score request"},
    {"max_connections", K_INT, FIELD(max_connections), 1, 65536, "256", "simultaneous HTTP connections"},
    {"idle_timeout_s", K_INT, FIELD(idle_timeout_s), 1, 3600, "30", "seconds before an idle connection is closed"},
    {"request_timeout_s", K_INT, FIELD(request_timeout_s), 1, 3600, "60",
     "seconds a client may take to send one whole request (headers and body); slower ones are cut off"},
    {"max_header_bytes", K_SIZE, FIELD(max_header_bytes), 8192, 1048576, "32K",
     "memory per connection for the request line and headers; larger headers get 431"},
    {"tls_cert", K_STR, FIELD(tls_cert), 0, 0, "", "PEM certificate (chain) file: with tls_key, serve HTTPS; empty = HTTP"},
    {"tls_key", K_STR, FIELD(tls_key), 0, 0, "", "PEM private key file of tls_cert (unencrypted)"},
    {"queue_depth", K_INT, FIELD(queue_depth), 1, 65536, "64", "jobs waiting for a worker before requests get 503"},
    {"deadline_ms", K_INT, FIELD(deadline_ms), 1, 3600000, "30000", "time allowed per request, queue wait included"},
    {"retrain_debounce_ms", K_INT, FIELD(retrain_debounce_ms), 0, 3600000, "2000",
     "quiet time after the last feedback before a retrain starts"},
    {"retrain_budget_s", K_INT, FIELD(retrain_budget_s), 1, 86400, "30", "time allowed for one retrain"},
    {"retrain_head_input", K_HEAD_INPUT, FIELD(retrain_head_input), 0, 0, "patches",
     "what a retrained model's DevNet head reads: patches (the stride-16 patch descriptors: scoring stops the "
     "forward pass there, about 1.3x the throughput) or final (the backbone's final map, as in the paper)"},
    {"retrain_max_fpr", K_DOUBLE, FIELD(retrain_max_fpr), 0, 1, "0.05",
     "largest false-positive rate a new model may have on held-out normal images"},
    {"retrain_min_recall", K_DOUBLE, FIELD(retrain_min_recall), 0, 1, "1.0",
     "share of labelled anomalies a new model must score above its threshold"},
    {"keep_versions", K_INT, FIELD(keep_versions), 1, 10000, "10", "model versions kept on disk"},
    {"watch_interval_ms", K_INT, FIELD(watch_interval_ms), 10, 3600000, "1000",
     "scorer role: how often to look for a new model version"},
    {"allow_insecure_writes", K_BOOL, FIELD(allow_insecure_writes), 0, 0, "false",
     "without an api_key, serve write and admin endpoints beyond loopback too (else 403)"},
    {"log_level", K_LEVEL, FIELD(log_level), 0, 0, "info", "debug, info, warn or error"},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static const char *const role_names[] = {"all", "scorer", "trainer"};

static const setting *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strlen(keys[i].name) == len && !strncmp(keys[i].name, name, len))
            return &keys[i];
    return NULL;
}

/* "[v6]:PORT" or "HOST:PORT" with a port of 0..65535; the host keeps no brackets. */
static int parse_listen(const char *s, char *host, size_t cap, int *port, dn_error *err)
{
    const char *h = s, *colon;
    size_t hlen;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not [IPV6]:PORT", s);
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not HOST:PORT", s);
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen))
            return dn_error_set(err, DN_EINVAL, "\"%.64s\": an IPv6 address needs brackets, as in [::1]:8080", s);
    }
    if (hlen == 0 || hlen >= cap)
        return dn_error_set(err, DN_EINVAL, "\"%.64s\": the host is empty or too long", s);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    unsigned char addr[16];
    if (h != s && inet_pton(AF_INET6, host, addr) != 1)
        return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not an IPv6 address", host);
    for (size_t i = 0; i < hlen; i++)
        if (!isgraph((unsigned char)host[i]))
            return dn_error_set(err, DN_EINVAL, "\"%.64s\": the host has a space or control character", s);
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 5 || p[digits] || atoi(p) > 65535)
        return dn_error_set(err, DN_EINVAL, "\"%.64s\": the port must be 0..65535", s);
    *port = atoi(p);
    return DN_OK;
}

/* A decimal integer; with suffixes, K, M or G (optionally followed by B or iB) multiply
 * by 2^10, 2^20, 2^30. */
static int parse_integer(const char *s, int suffixes, long long *out, dn_error *err)
{
    const char *what = suffixes ? "a size (an integer with an optional K, M or G)" : "an integer";
    if (!isdigit((unsigned char)s[*s == '-' || *s == '+']))
        return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not %s", s, what);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    static const char units[] = "KMG";
    int shift = 0;
    const char *unit = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (suffixes && unit) {
        shift = 10 * (int)(unit - units + 1);
        end++;
        if (!strcmp(end, "B") || !strcmp(end, "iB"))
            end += strlen(end);
    }
    if (errno == ERANGE || *end || v > (LLONG_MAX >> shift) || v < -(LLONG_MAX >> shift))
        return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not %s", s, what);
    *out = v * (1LL << shift);
    return DN_OK;
}

static int parse_double(const char *s, double *out, dn_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || isspace((unsigned char)*s) || *end || errno == ERANGE || !isfinite(v))
        return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not a number", s);
    *out = v;
    return DN_OK;
}

static int parse_bool(const char *s, int *out, dn_error *err)
{
    static const char *const words[][2] = {{"false", "true"}, {"0", "1"}, {"no", "yes"}};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 2; b++)
            if (!strcasecmp(s, words[i][b])) {
                *out = b;
                return DN_OK;
            }
    return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not a boolean (true/false, 1/0, yes/no)", s);
}

static int parse_role(const char *s, dn_role *out, dn_error *err)
{
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(s, role_names[i])) {
            *out = (dn_role)i;
            return DN_OK;
        }
    return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not a role (all, scorer or trainer)", s);
}

/* Integers of every width go through long long and one range check. */
static int set_integer(char *field, const setting *k, const char *v, dn_error *err)
{
    long long i = 0;
    int rc = parse_integer(v, k->type == K_SIZE, &i, err);
    if (rc)
        return rc;
    if ((double)i < k->min || (double)i > k->max)
        return dn_error_set(err, DN_EINVAL, "%lld is out of range %.0f..%.0f", i, k->min, k->max);
    if (k->type == K_INT)
        *(int *)field = (int)i;
    else if (k->type == K_LONG)
        *(long *)field = (long)i;
    else
        *(size_t *)field = (size_t)i;
    return DN_OK;
}

/* Parses v for k and stores it in c; c is unchanged on error. The message (on err) does
 * not name the key: callers add the context (key, file:line, variable, flag). */
static int apply(dn_config *c, const setting *k, const char *v, dn_error *err)
{
    char *field = (char *)c + k->off;
    char host[sizeof c->listen_host];
    double d = 0;
    dn_log_level level;
    int rc = DN_OK, port = 0;
    switch (k->type) {
    case K_LISTEN:
        if ((rc = parse_listen(v, host, sizeof host, &port, err)))
            return rc;
        memcpy(c->listen_host, host, sizeof host);
        c->port = port;
        return DN_OK;
    case K_STR:
    case K_SECRET:
        if (strlen(v) >= k->cap)
            return dn_error_set(err, DN_EINVAL, "\"%.32s...\" is too long (at most %zu bytes)", v, k->cap - 1);
        memcpy(field, v, strlen(v) + 1);
        return DN_OK;
    case K_INT:
    case K_LONG:
    case K_SIZE:
        return set_integer(field, k, v, err);
    case K_DOUBLE:
        if ((rc = parse_double(v, &d, err)))
            return rc;
        if (d < k->min || d > k->max)
            return dn_error_set(err, DN_EINVAL, "%g is out of range %g..%g", d, k->min, k->max);
        *(double *)field = d;
        return DN_OK;
    case K_BOOL:
        return parse_bool(v, (int *)field, err);
    case K_ROLE:
        return parse_role(v, (dn_role *)field, err);
    case K_HEAD_INPUT:
        if (dn_head_input_parse(v, (dn_head_input *)field))
            return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not a head input (final or patches)", v);
        return DN_OK;
    case K_LEVEL:
        if (dn_log_level_parse(v, &level))
            return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not a log level (debug, info, warn or error)", v);
        snprintf(field, k->cap, "%s", dn_log_level_name(level));
        return DN_OK;
    case K_SHA256:
        if (*v && (strlen(v) != 64 || strspn(v, "0123456789abcdefABCDEF") != 64))
            return dn_error_set(err, DN_EINVAL, "\"%.64s\" is not a sha256 (64 hexadecimal digits)", v);
        for (size_t i = 0; i <= strlen(v); i++)
            field[i] = (char)tolower((unsigned char)v[i]);
        return DN_OK;
    }
    return DN_EINVAL; /* not reached: the switch covers every type */
}

void dn_config_defaults(dn_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_KEYS; i++)
        apply(c, &keys[i], keys[i].def, NULL);
}

static int set_key(dn_config *c, const char *name, size_t len, const char *value, dn_error *err)
{
    const setting *k = find_key(name, len);
    if (!k)
        return dn_error_set(err, DN_EINVAL, "unknown setting \"%.*s\" (devnetd --help lists them)",
                            (int)(len < 64 ? len : 64), name);
    dn_error e;
    int rc = apply(c, k, value, &e);
    return rc ? dn_error_set(err, rc, "%s: %s", k->name, e.msg) : DN_OK;
}

int dn_config_set(dn_config *c, const char *key, const char *value, dn_error *err)
{
    if (!key || !value)
        return dn_error_set(err, DN_EINVAL, "dn_config_set: no key or value");
    return set_key(c, key, strlen(key), value, err);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The value after '=', rewritten in place: a double-quoted value loses its quotes and its
 * \" and \\ escapes; an unquoted one ends at a '#' that follows a space or tab. */
static int file_value(char *raw, char **out, dn_error *err)
{
    char *s = raw;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '"') {
        for (char *p = raw; *p; p++)
            if (*p == '#' && p > raw && (p[-1] == ' ' || p[-1] == '\t')) {
                *p = '\0';
                break;
            }
        *out = trim(raw);
        return DN_OK;
    }
    char *w = s, *r = s + 1;
    for (; *r && *r != '"'; r++) {
        if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
            r++;
        *w++ = *r;
    }
    if (*r != '"')
        return dn_error_set(err, DN_EINVAL, "unterminated quoted value");
    r = trim(r + 1);
    if (*r && *r != '#')
        return dn_error_set(err, DN_EINVAL, "text after the closing quote");
    *w = '\0';
    *out = s;
    return DN_OK;
}

static int file_line(dn_config *c, char *line, const char *path, int n, dn_error *err)
{
    char *s = trim(line), *value = NULL;
    if (!*s || *s == '#')
        return DN_OK;
    char *eq = strchr(s, '=');
    if (!eq)
        return dn_error_set(err, DN_EINVAL, "%s:%d: expected \"key = value\"", path, n);
    *eq = '\0';
    dn_error e;
    int rc = file_value(eq + 1, &value, &e);
    if (rc == DN_OK) {
        char *key = trim(s);
        rc = set_key(c, key, strlen(key), value, &e);
    }
    return rc ? dn_error_set(err, rc, "%s:%d: %s", path, n, e.msg) : DN_OK;
}

int dn_config_load_file(dn_config *c, const char *path, dn_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return dn_error_set(err, DN_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int rc = DN_OK, n = 0;
    while (rc == DN_OK && getline(&line, &cap, f) >= 0)
        rc = file_line(c, line, path, ++n, err);
    if (rc == DN_OK && ferror(f))
        rc = dn_error_set(err, DN_EIO, "%s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

static void env_name(const setting *k, char out[64])
{
    int n = snprintf(out, 64, "DEVNET_%s", k->name);
    for (int i = 0; i < n && i < 64; i++)
        out[i] = (char)toupper((unsigned char)out[i]);
}

int dn_config_load_env(dn_config *c, dn_error *err)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        char name[64];
        env_name(&keys[i], name);
        const char *v = getenv(name);
        dn_error e;
        int rc = v ? apply(c, &keys[i], v, &e) : DN_OK;
        if (rc)
            return dn_error_set(err, rc, "%s: %s", name, e.msg);
    }
    return DN_OK;
}

typedef struct flag {
    const char *name, *meta;
    const char *key;  /* the setting it sets; NULL for --config and --set */
    const char *help; /* for those two */
} flag;

static const flag flags[] = {
    {"--config", "FILE", NULL, "settings file (else $DEVNET_CONFIG; none when neither)"},
    {"--model", "FILE", "model", NULL},
    {"--data-dir", "DIR", "data_dir", NULL},
    {"--listen", "HOST:PORT", "listen", NULL},
    {"--workers", "N", "workers", NULL},
    {"--api-key", "KEY", "api_key", NULL},
    {"--role", "all|scorer|trainer", "role", NULL},
    {"--backbone", "FILE", "backbone", NULL},
    {"--train-data", "DIR", "train_data", NULL},
    {"--set", "KEY=VALUE", NULL, "any setting below (repeatable)"},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

/* argv[*i] as a flag and its value ("--flag VALUE" or "--flag=VALUE"), advancing *i;
 * *f is NULL for --help/-h. */
static int next_arg(int argc, char **argv, int *i, const flag **f, const char **value, dn_error *err)
{
    const char *a = argv[(*i)++];
    *f = NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help"))
        return DN_OK;
    const char *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    for (size_t j = 0; j < N_FLAGS; j++)
        if (strlen(flags[j].name) == n && !strncmp(a, flags[j].name, n)) {
            *f = &flags[j];
            if (eq)
                *value = eq + 1;
            else if (*i < argc)
                *value = argv[(*i)++];
            else
                return dn_error_set(err, DN_EINVAL, "%s needs a value: %s %s (see --help)", flags[j].name,
                                    flags[j].name, flags[j].meta);
            return DN_OK;
        }
    if (a[0] == '-')
        return dn_error_set(err, DN_EINVAL, "unknown option %.64s (see --help)", a);
    return dn_error_set(err, DN_EINVAL, "unexpected argument \"%.64s\" (see --help)", a);
}

static int apply_flag(dn_config *c, const flag *f, const char *v, dn_error *err)
{
    dn_error e;
    int rc;
    if (f->key) {
        rc = dn_config_set(c, f->key, v, &e);
        return rc ? dn_error_set(err, rc, "%s: %s", f->name, e.msg) : DN_OK;
    }
    if (strcmp(f->name, "--set"))
        return DN_OK; /* --config: read before the environment */
    const char *eq = strchr(v, '=');
    if (!eq)
        return dn_error_set(err, DN_EINVAL, "--set needs KEY=VALUE, not \"%.64s\"", v);
    rc = set_key(c, v, (size_t)(eq - v), eq + 1, &e);
    return rc ? dn_error_set(err, rc, "--set: %s", e.msg) : DN_OK;
}

int dn_config_from_args(dn_config *c, int argc, char **argv, int *help, dn_error *err)
{
    const char *file = getenv("DEVNET_CONFIG"), *v;
    const flag *f;
    int rc;
    *help = 0;
    dn_config_defaults(c);
    /* First pass: check the command line and find the file, which ranks below the
     * environment and so must be read before it. */
    for (int i = 1; i < argc;) {
        if ((rc = next_arg(argc, argv, &i, &f, &v, err)))
            return rc;
        if (!f) {
            *help = 1;
            return DN_OK;
        }
        if (!f->key && !strcmp(f->name, "--config"))
            file = v;
    }
    if (file && *file && (rc = dn_config_load_file(c, file, err)))
        return rc;
    if ((rc = dn_config_load_env(c, err)))
        return rc;
    for (int i = 1; i < argc;) {
        next_arg(argc, argv, &i, &f, &v, err); /* cannot fail: the first pass checked it */
        if ((rc = apply_flag(c, f, v, err)))
            return rc;
    }
    return DN_OK;
}

void dn_config_usage(FILE *out)
{
    fputs("usage: devnetd [options]\n\noptions:\n", out);
    for (size_t i = 0; i < N_FLAGS; i++) {
        char left[48];
        snprintf(left, sizeof left, "%s %s", flags[i].name, flags[i].meta);
        if (flags[i].key)
            fprintf(out, "  %-30s sets %s\n", left, flags[i].key);
        else
            fprintf(out, "  %-30s %s\n", left, flags[i].help);
    }
    fprintf(out, "  %-30s %s\n", "-h, --help", "this text");
    fputs("\nEach setting comes from, first found: a flag; the environment variable DEVNET_<KEY>,\n"
          "the key in upper case (DEVNET_LISTEN, DEVNET_MAX_BODY_BYTES, ...); the config file\n"
          "(\"key = value\" lines, '#' comments; configs/devnetd.conf lists them all); the default.\n"
          "Sizes take K, M or G (binary: 32M = 32 MiB); booleans true/false, 1/0, yes/no.\n"
          "\nsettings (key = default):\n",
          out);
    for (size_t i = 0; i < N_KEYS; i++)
        fprintf(out, "  %s = %s\n      %s\n", keys[i].name, *keys[i].def ? keys[i].def : "\"\"", keys[i].help);
}

static void format_listen(const dn_config *c, char *out, size_t cap)
{
    if (strchr(c->listen_host, ':'))
        snprintf(out, cap, "[%s]:%d", c->listen_host, c->port);
    else
        snprintf(out, cap, "%s:%d", c->listen_host, c->port);
}

static cJSON *value_json(const dn_config *c, const setting *k)
{
    const char *field = (const char *)c + k->off;
    char listen[sizeof c->listen_host + 16];
    switch (k->type) {
    case K_LISTEN:
        format_listen(c, listen, sizeof listen);
        return cJSON_CreateString(listen);
    case K_STR:
    case K_LEVEL:
    case K_SHA256:
        return cJSON_CreateString(field);
    case K_SECRET:
        return cJSON_CreateString(*field ? "(set)" : "");
    case K_INT:
        return cJSON_CreateNumber(*(const int *)field);
    case K_LONG:
        return cJSON_CreateNumber((double)*(const long *)field);
    case K_SIZE:
        return cJSON_CreateNumber((double)*(const size_t *)field);
    case K_DOUBLE:
        return cJSON_CreateNumber(*(const double *)field);
    case K_BOOL:
        return cJSON_CreateBool(*(const int *)field);
    case K_ROLE:
        return cJSON_CreateString(role_names[*(const dn_role *)field]);
    case K_HEAD_INPUT:
        return cJSON_CreateString(dn_head_input_name(*(const dn_head_input *)field));
    }
    return NULL;
}

cJSON *dn_config_json(const dn_config *c)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < N_KEYS; i++) {
        cJSON *v = value_json(c, &keys[i]);
        if (!v || !cJSON_AddItemToObject(o, keys[i].name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

int dn_config_is_loopback(const dn_config *c)
{
    const char *h = c->listen_host;
    struct in_addr a4;
    struct in6_addr a6;
    if (!strcasecmp(h, "localhost"))
        return 1;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return ntohl(a4.s_addr) >> 24 == 127;
    if (inet_pton(AF_INET6, h, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}
