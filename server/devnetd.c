/* devnetd: the scoring service. Settings come from flags, DEVNET_* variables, a config
 * file and defaults (dn_config.h); logs are JSON lines on stderr.
 * SIGTERM/SIGINT: not ready, finish requests in flight, exit 0. SIGHUP: reload the
 * settings and the model. */
#include "dn_http.h"
#include "dn_log.h"

#include <cblas.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define DRAIN_TIMEOUT_S 30.0 /* Kubernetes' default grace period */

static void log_start(const dn_config *cfg, int port)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "port", port);
    cJSON_AddItemToObject(f, "config", dn_config_json(cfg));
    dn_log(DN_LOG_INFO, "listening", f);
}

static void setup_logs(const dn_config *cfg)
{
    dn_log_level level = DN_LOG_INFO;
    dn_log_level_parse(cfg->log_level, &level);
    dn_log_setup(stderr, level);
}

static void reload(dn_service *svc, int argc, char **argv)
{
    dn_config next;
    dn_error err;
    int help = 0;
    dn_error_clear(&err);
    if (dn_config_from_args(&next, argc, argv, &help, &err) || dn_service_reload(svc, &next, &err)) {
        dn_log_msg(DN_LOG_ERROR, "reload_failed", "%s; the old settings stay", err.msg);
        return;
    }
    setup_logs(&next);
    dn_log_msg(DN_LOG_INFO, "reloaded", "settings and model reloaded (model version %d)",
               dn_registry_live_version(&svc->reg));
}

/* Signals are taken by sigwait in main only: every thread starts with them blocked. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void serve(dn_service *svc, dn_http *http, const sigset_t *set, int argc, char **argv)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig))
            continue;
        if (sig == SIGHUP) {
            reload(svc, argc, argv);
            continue;
        }
        dn_log_msg(DN_LOG_INFO, "draining", "signal %d: not ready, finishing requests in flight", sig);
        atomic_store(&svc->draining, 1);
        dn_http_stop(http, DRAIN_TIMEOUT_S);
        return;
    }
}

int main(int argc, char **argv)
{
    dn_config cfg;
    dn_error err;
    int help = 0;
    dn_error_clear(&err);
    if (dn_config_from_args(&cfg, argc, argv, &help, &err)) {
        fprintf(stderr, "devnetd: %s (see devnetd --help)\n", err.msg);
        return 2;
    }
    if (help) {
        dn_config_usage(stdout);
        return 0;
    }
    setup_logs(&cfg);
    openblas_set_num_threads(1); /* one BLAS thread per worker: see README, Service */
    sigset_t set;
    block_signals(&set);
    dn_service svc;
    dn_http http;
    int rc = dn_service_init(&svc, &cfg, &err);
    if (!rc)
        rc = dn_http_start(&http, &svc, &cfg, &err);
    if (rc) {
        dn_log_msg(DN_LOG_ERROR, "start_failed", "%s", err.msg);
        dn_service_free(&svc);
        return 1;
    }
    log_start(&cfg, http.port);
    if (dn_registry_live_version(&svc.reg) < 0)
        dn_log_msg(DN_LOG_WARN, "not_ready",
                   "no model yet: a first one is trained from train_data (%s) and normal feedback "
                   "images; at least %d normal images are needed",
                   cfg.train_data[0] ? cfg.train_data : "not set", DN_RETRAIN_MIN_NORMALS);
    serve(&svc, &http, &set, argc, argv);
    dn_service_free(&svc);
    dn_log_msg(DN_LOG_INFO, "stopped", "exit 0");
    return 0;
}
