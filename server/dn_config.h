/* dn_config: the settings of the devnetd daemon.
 *
 * Each setting comes from, first found: a command-line flag, the environment variable
 * DEVNET_<KEY in upper case>, the config file, the built-in default. One table of keys in
 * dn_config.c drives the file, the environment, --set, the usage text and the JSON dump,
 * so they cannot disagree. configs/devnetd.conf lists every key with its default. */
#ifndef DN_CONFIG_H
#define DN_CONFIG_H

#include "dn_error.h"
#include "dn_model.h"

#include <cJSON.h>
#include <stddef.h>
#include <stdio.h>

typedef enum dn_role { DN_ROLE_ALL = 0, DN_ROLE_SCORER, DN_ROLE_TRAINER } dn_role;

typedef struct dn_config {
    char listen_host[256]; int port; /* listen = "127.0.0.1:8080" (HOST:PORT; "[::1]:8080" IPv6; port 0 = any free port) */
    int workers;               /* scoring worker threads; 0 = one per online core */
    int io_threads;            /* libmicrohttpd polling threads (2) */
    char model[4096];          /* a model file to serve; "" = newest good version in data_dir/models */
    char data_dir[4096];       /* "./devnet-data" */
    char backbone[4096];       /* "build/backbone.safetensors" */
    char backbone_sha256[65];  /* "" = not checked, else the sha256 the backbone file must have */
    char train_data[4096];     /* normal training images: an MVTec-layout folder (uses train/good) or a folder of images; "" = none */
    char api_key[256];         /* "" = none */
    dn_role role;              /* all | scorer | trainer */
    size_t max_body_bytes;     /* 32 MiB */
    long max_pixels;           /* decoded width*height per image (DN_DEFAULT_MAX_PIXELS) */
    int max_batch;             /* images per /score request (16) */
    int max_connections;       /* 256 */
    int idle_timeout_s;        /* 30 */
    int request_timeout_s;     /* 60: to receive one whole request, headers and body */
    size_t max_header_bytes;   /* 32 KiB: libmicrohttpd's memory per connection */
    char tls_cert[4096];       /* PEM files; both set = HTTPS */
    char tls_key[4096];
    int queue_depth;           /* pending jobs for the workers before 503 (64) */
    int deadline_ms;           /* per request, queue wait included (30000) */
    int retrain_debounce_ms;   /* 2000 */
    int retrain_budget_s;      /* 30 */
    dn_head_input retrain_head_input; /* patches | final (patches): what a retrained model's DevNet head reads */
    double retrain_max_fpr;    /* 0.05: new model's false-positive rate on held-out normals */
    double retrain_min_recall; /* 1.0: share of labelled anomalies it must score above its threshold */
    int keep_versions;         /* model versions kept on disk (10) */
    int watch_interval_ms;     /* scorer role: how often to look for a new model version (1000) */
    int allow_insecure_writes; /* 0: without an api_key, write/admin endpoints answer 403 when listening beyond loopback */
    char log_level[16];        /* debug|info|warn|error (info) */
} dn_config;

/* Every setting at its built-in default. */
void dn_config_defaults(dn_config *c);

/* One setting by its key (the config-file key: "max_body_bytes", "listen", "role", ...),
 * validated: integer ranges, enum values, sizes with optional K/M/G suffixes (binary: 32M
 * = 32 MiB), booleans true/false/1/0/yes/no. On error c is unchanged and err names the
 * key: DN_EINVAL. */
int dn_config_set(dn_config *c, const char *key, const char *value, dn_error *err);

/* A config file: "key = value" lines, '#' comments, blank lines. A value may be
 * double-quoted (with \" and \\ inside); an unquoted value ends at a '#' that follows a
 * space or tab. An unknown key or bad value is DN_EINVAL naming the file and line; an
 * unreadable file is DN_EIO. */
int dn_config_load_file(dn_config *c, const char *path, dn_error *err);

/* For every key, DEVNET_<KEY in upper case> when set (DEVNET_LISTEN, DEVNET_API_KEY,
 * DEVNET_MAX_BODY_BYTES ...); set-but-empty counts as set. Other DEVNET_* variables
 * (DEVNET_SHARED, DEVNET_CACHE, DEVNET_CONFIG) are not settings and are ignored. */
int dn_config_load_env(dn_config *c, dn_error *err);

/* The whole precedence from argv (argv[0] is the program): defaults; the file from
 * --config FILE, else $DEVNET_CONFIG when set and non-empty; the environment; then the
 * flags in order: --model --data-dir --listen --workers --api-key --role --backbone
 * --train-data, and --set KEY=VALUE (repeatable) for any key. Flags take "--flag VALUE"
 * or "--flag=VALUE". Sets *help = 1 and returns DN_OK at once on --help/-h. Unknown flags,
 * missing values and stray arguments are DN_EINVAL with a usage-style message. */
int dn_config_from_args(dn_config *c, int argc, char **argv, int *help, dn_error *err);

/* The --help text: the flags, the precedence, the environment naming rule and every key
 * with its default and meaning. */
void dn_config_usage(FILE *out);

/* The effective settings as a JSON object, one member per key in table order (listen as
 * "HOST:PORT", api_key as "(set)" or ""), for the start-up log. NULL when out of memory. */
cJSON *dn_config_json(const dn_config *c);

/* Whether listen_host is loopback only: 127.0.0.0/8, ::1 (also IPv4-mapped), localhost. */
int dn_config_is_loopback(const dn_config *c);

#endif
