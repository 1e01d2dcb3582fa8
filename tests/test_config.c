/* dn_config: defaults, validation, the file syntax, the environment and the precedence
 * flags > environment > file > defaults. Criterion runs each test in its own process, so
 * setenv/unsetenv stay local to a test. */
#include "test_util.h"

#include "dn_config.h"
#include "dn_limits.h"

#include <unistd.h>

extern char **environ;

/* Unsets every DEVNET_* variable (make test exports DEVNET_SHARED and DEVNET_BACKBONE). */
static void clear_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++)
            if (!strncmp(*e, "DEVNET_", 7)) {
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                break;
            }
        if (!*name)
            return;
        unsetenv(name);
    }
}

static char dir[64], path[128];

static void setup(void)
{
    clear_env();
    dn_test_mkdtemp(dir, "dn_cfg_");
    snprintf(path, sizeof path, "%s/devnetd.conf", dir);
}

static void teardown(void)
{
    dn_test_rmtree(dir);
}

static void write_conf(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Field by field through the JSON dump, plus the api_key it hides. */
static int same_config(const dn_config *a, const dn_config *b)
{
    cJSON *ja = dn_config_json(a), *jb = dn_config_json(b);
    int same = cJSON_Compare(ja, jb, 1) && !strcmp(a->api_key, b->api_key);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return same;
}

static int set(dn_config *c, const char *key, const char *value, dn_error *err)
{
    dn_error_clear(err);
    return dn_config_set(c, key, value, err);
}

Test(config, defaults)
{
    dn_config c;
    dn_config_defaults(&c);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_eq(c.port, 8080);
    cr_assert_eq(c.workers, 0);
    cr_assert_eq(c.io_threads, 2);
    cr_assert_str_eq(c.model, "");
    cr_assert_str_eq(c.data_dir, "./devnet-data");
    cr_assert_str_eq(c.backbone, "build/backbone.safetensors");
    cr_assert_str_eq(c.train_data, "");
    cr_assert_str_eq(c.api_key, "");
    cr_assert_eq(c.role, DN_ROLE_ALL);
    cr_assert_eq(c.max_body_bytes, (size_t)32 << 20);
    cr_assert_eq(c.max_pixels, (long)DN_DEFAULT_MAX_PIXELS);
    cr_assert_eq(c.max_batch, 16);
    cr_assert_eq(c.max_connections, 256);
    cr_assert_eq(c.idle_timeout_s, 30);
    cr_assert_eq(c.queue_depth, 64);
    cr_assert_eq(c.deadline_ms, 30000);
    cr_assert_eq(c.retrain_debounce_ms, 2000);
    cr_assert_eq(c.retrain_budget_s, 30);
    cr_assert_eq(c.retrain_head_input, DN_HEAD_INPUT_PATCHES);
    cr_assert_float_eq(c.retrain_max_fpr, 0.05, 1e-12);
    cr_assert_float_eq(c.retrain_min_recall, 1.0, 1e-12);
    cr_assert_eq(c.keep_versions, 10);
    cr_assert_eq(c.watch_interval_ms, 1000);
    cr_assert_eq(c.allow_insecure_writes, 0);
    cr_assert_str_eq(c.log_level, "info");
    cr_assert(dn_config_is_loopback(&c));
}

Test(config, set_parses_each_type)
{
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    cr_assert_eq(set(&c, "workers", "8", &err), DN_OK, "%s", err.msg);
    cr_assert_eq(c.workers, 8);
    cr_assert_eq(set(&c, "role", "scorer", &err), DN_OK);
    cr_assert_eq(c.role, DN_ROLE_SCORER);
    cr_assert_eq(set(&c, "role", "TRAINER", &err), DN_OK);
    cr_assert_eq(c.role, DN_ROLE_TRAINER);
    cr_assert_eq(set(&c, "retrain_max_fpr", "0.125", &err), DN_OK);
    cr_assert_float_eq(c.retrain_max_fpr, 0.125, 1e-12);
    cr_assert_eq(set(&c, "retrain_head_input", "final", &err), DN_OK, "%s", err.msg);
    cr_assert_eq(c.retrain_head_input, DN_HEAD_INPUT_FINAL);
    cr_assert_eq(set(&c, "max_pixels", "1000000", &err), DN_OK);
    cr_assert_eq(c.max_pixels, 1000000);
    cr_assert_eq(set(&c, "log_level", "WARN", &err), DN_OK);
    cr_assert_str_eq(c.log_level, "warn", "kept as the canonical name");
    cr_assert_eq(set(&c, "model", "/srv/models/a b.model", &err), DN_OK);
    cr_assert_str_eq(c.model, "/srv/models/a b.model");
    static const char *const yes[] = {"true", "1", "yes", "YES"}, *const no[] = {"false", "0", "no", "False"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(set(&c, "allow_insecure_writes", yes[i], &err), DN_OK, "%s", yes[i]);
        cr_assert_eq(c.allow_insecure_writes, 1);
        cr_assert_eq(set(&c, "allow_insecure_writes", no[i], &err), DN_OK, "%s", no[i]);
        cr_assert_eq(c.allow_insecure_writes, 0);
    }
    cr_assert_eq(set(&c, "allow_insecure_writes", "maybe", &err), DN_EINVAL);
    cr_assert_eq(set(&c, "role", "admin", &err), DN_EINVAL);
    cr_assert_eq(set(&c, "log_level", "verbose", &err), DN_EINVAL);
    cr_assert_eq(set(&c, "retrain_head_input", "tail", &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "final or patches"), "%s", err.msg);
    cr_assert_eq(c.retrain_head_input, DN_HEAD_INPUT_FINAL, "unchanged on error");
    cr_assert_eq(set(&c, "no_such_key", "1", &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "unknown setting \"no_such_key\""), "%s", err.msg);
}

Test(config, size_suffixes)
{
    static const struct {
        const char *text;
        size_t want;
    } ok[] = {{"1K", 1024},         {"64k", 65536},           {"32M", 32u << 20}, {"1MiB", 1u << 20},
              {"2MB", 2u << 20},    {"2G", (size_t)2 << 30},  {"4G", (size_t)4 << 30},
              {"1048576", 1048576}, {"+2048", 2048}};
    static const char *const bad[] = {"", "M", "1T", "1.5M", "-1K", "1KB2", "1 K", " 1K", "1Kx",
                                      "99999999999G", "99999999999999999999"};
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(set(&c, "max_body_bytes", ok[i].text, &err), DN_OK, "%s: %s", ok[i].text, err.msg);
        cr_assert_eq(c.max_body_bytes, ok[i].want, "%s", ok[i].text);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(set(&c, "max_body_bytes", bad[i], &err), DN_EINVAL, "\"%s\" accepted", bad[i]);
        cr_assert(strstr(err.msg, "max_body_bytes"), "%s", err.msg);
    }
    cr_assert_eq(set(&c, "max_body_bytes", "512", &err), DN_EINVAL, "below the 1K minimum");
    cr_assert_eq(set(&c, "max_body_bytes", "5G", &err), DN_EINVAL, "above the 4G maximum");
    /* Suffixes are for sizes only. */
    cr_assert_eq(set(&c, "max_batch", "1K", &err), DN_EINVAL);
    cr_assert_eq(c.max_body_bytes, 2048, "failed sets leave the value alone");
}

Test(config, range_errors_leave_the_config_unchanged)
{
    static const struct {
        const char *key, *value;
    } bad[] = {{"workers", "-1"},          {"workers", "1025"},        {"io_threads", "0"},
               {"max_batch", "12abc"},     {"max_batch", " 5"},        {"max_batch", "3.0"},
               {"queue_depth", "0"},       {"deadline_ms", "0"},       {"keep_versions", "0"},
               {"retrain_max_fpr", "1.5"}, {"retrain_max_fpr", "-0.1"}, {"retrain_min_recall", "nan"},
               {"retrain_max_fpr", "abc"}, {"watch_interval_ms", "5"}, {"max_pixels", "0"},
               {"max_pixels", "5000000000"}, {"workers", "99999999999999999999"}};
    dn_config c, d;
    dn_error err;
    dn_config_defaults(&c);
    dn_config_defaults(&d);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(set(&c, bad[i].key, bad[i].value, &err), DN_EINVAL, "%s = %s accepted", bad[i].key,
                     bad[i].value);
        cr_assert_eq(err.code, DN_EINVAL);
        cr_assert(!strncmp(err.msg, bad[i].key, strlen(bad[i].key)), "message names the key: %s", err.msg);
    }
    cr_assert(same_config(&c, &d));
    cr_assert_eq(set(&c, "workers", "-1", &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "out of range 0..1024"), "%s", err.msg);
    char longpath[5000];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    cr_assert_eq(set(&c, "model", longpath, &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "too long"), "%s", err.msg);
    cr_assert_str_eq(c.model, "");
}

Test(config, listen_parsing)
{
    static const struct {
        const char *text, *host;
        int port;
    } ok[] = {{"0.0.0.0:80", "0.0.0.0", 80}, {"[::1]:8080", "::1", 8080}, {"localhost:0", "localhost", 0},
              {"[::]:9000", "::", 9000},    {"example.com:65535", "example.com", 65535},
              {"[fe80::1:2]:1", "fe80::1:2", 1}};
    static const char *const bad[] = {"127.0.0.1", "::1:8080",  "[::1]8080",       "[::1", "[::1]:",
                                      "host:65536", "host:-1",  "host:",           ":8080", "[zz]:80",
                                      "host:80x",   "a b:80",   "[127.0.0.1]:80",  "host:123456", ""};
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(set(&c, "listen", ok[i].text, &err), DN_OK, "%s: %s", ok[i].text, err.msg);
        cr_assert_str_eq(c.listen_host, ok[i].host);
        cr_assert_eq(c.port, ok[i].port);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(set(&c, "listen", bad[i], &err), DN_EINVAL, "\"%s\" accepted", bad[i]);
    cr_assert_str_eq(c.listen_host, "fe80::1:2", "a bad listen changes nothing");
    cr_assert_eq(set(&c, "listen", "::1:8080", &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "brackets"), "%s", err.msg);
    /* The JSON dump brackets IPv6 hosts again. */
    cr_assert_eq(set(&c, "listen", "[::1]:8080", &err), DN_OK);
    cJSON *j = dn_config_json(&c);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "listen")), "[::1]:8080");
    cJSON_Delete(j);
}

Test(config, loopback)
{
    static const char *const yes[] = {"127.0.0.1:1", "127.5.6.7:1", "[::1]:1", "localhost:1", "LOCALHOST:1",
                                      "[::ffff:127.0.0.1]:1"};
    static const char *const no[] = {"0.0.0.0:1", "10.0.0.1:1", "[::]:1", "example.com:1", "128.0.0.1:1",
                                     "[::ffff:10.0.0.1]:1"};
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        cr_assert_eq(set(&c, "listen", yes[i], &err), DN_OK, "%s", err.msg);
        cr_assert(dn_config_is_loopback(&c), "%s", yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        cr_assert_eq(set(&c, "listen", no[i], &err), DN_OK, "%s", err.msg);
        cr_assert(!dn_config_is_loopback(&c), "%s", no[i]);
    }
}

Test(config, file_syntax, .init = setup, .fini = teardown)
{
    write_conf("# a comment\n"
               "\n"
               "   workers=3   \n"
               "\tlisten = [::1]:9090 # inline comment\r\n"
               "api_key = \"se#cret \\\"quoted\\\" \\\\ \"  # after the quotes\n"
               "model = \"\"\n"
               "data_dir = /srv/devnet#1\n"
               "max_body_bytes = 1M\n"
               "train_data =\n"
               "backbone = # only a comment: empty\n");
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    cr_assert_eq(dn_config_load_file(&c, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(c.workers, 3);
    cr_assert_str_eq(c.listen_host, "::1");
    cr_assert_eq(c.port, 9090);
    cr_assert_str_eq(c.api_key, "se#cret \"quoted\" \\ ");
    cr_assert_str_eq(c.model, "");
    cr_assert_str_eq(c.data_dir, "/srv/devnet#1", "a '#' inside a word is part of the value");
    cr_assert_eq(c.max_body_bytes, 1u << 20);
    cr_assert_str_eq(c.train_data, "");
    cr_assert_str_eq(c.backbone, "");
}

Test(config, file_errors_name_file_and_line, .init = setup, .fini = teardown)
{
    static const struct {
        const char *text;
        int line;
        const char *says;
    } bad[] = {{"workers = 2\n\nno equals sign here\n", 3, "expected"},
               {"# c\nworkers = 2\nworkerz = 2\n", 3, "unknown setting \"workerz\""},
               {"workers = lots\n", 1, "workers: \"lots\" is not an integer"},
               {"\n\n\n\nmax_batch = 0\n", 5, "out of range"},
               {"api_key = \"open\n", 1, "unterminated"},
               {"api_key = \"a\" b\n", 1, "after the closing quote"},
               {"role = \n", 1, "role"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_conf(bad[i].text);
        dn_config c;
        dn_error err;
        dn_error_clear(&err);
        dn_config_defaults(&c);
        cr_assert_eq(dn_config_load_file(&c, path, &err), DN_EINVAL, "case %zu", i);
        char where[200];
        snprintf(where, sizeof where, "%s:%d: ", path, bad[i].line);
        cr_assert(!strncmp(err.msg, where, strlen(where)), "want \"%s\" in: %s", where, err.msg);
        cr_assert(strstr(err.msg, bad[i].says), "want \"%s\" in: %s", bad[i].says, err.msg);
    }
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    cr_assert_eq(dn_config_load_file(&c, "/nonexistent/devnetd.conf", &err), DN_EIO);
    cr_assert(strstr(err.msg, "/nonexistent/devnetd.conf"), "%s", err.msg);
    cr_assert_eq(dn_config_load_file(&c, dir, &err), DN_EIO, "a directory is not a file");
}

static int from_args(dn_config *c, dn_error *err, int *help, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    dn_error_clear(err);
    return dn_config_from_args(c, argc, argv, help, err);
}
#define ARGS(...) ((char *[]){"devnetd", __VA_ARGS__, NULL})

Test(config, precedence_flags_env_file_defaults, .init = setup, .fini = teardown)
{
    dn_config c;
    dn_error err;
    int help;
    write_conf("workers = 3\nmax_batch = 4\nqueue_depth = 5\nrole = trainer\n");
    /* The file over the defaults. */
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--config", path)), DN_OK, "%s", err.msg);
    cr_assert_eq(c.workers, 3);
    cr_assert_eq(c.max_batch, 4);
    cr_assert_eq(c.io_threads, 2, "keys absent from the file keep their default");
    /* The environment over the file. */
    setenv("DEVNET_WORKERS", "5", 1);
    setenv("DEVNET_MAX_BATCH", "6", 1);
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--config", path)), DN_OK, "%s", err.msg);
    cr_assert_eq(c.workers, 5);
    cr_assert_eq(c.max_batch, 6);
    cr_assert_eq(c.queue_depth, 5);
    /* Flags over the environment, applied in order, in both spellings. */
    cr_assert_eq(from_args(&c, &err, &help,
                           ARGS("--config", path, "--workers", "7", "--set", "max_batch=8", "--role=scorer",
                                "--set", "queue_depth=9", "--set=queue_depth=10")),
                 DN_OK, "%s", err.msg);
    cr_assert_eq(help, 0);
    cr_assert_eq(c.workers, 7);
    cr_assert_eq(c.max_batch, 8);
    cr_assert_eq(c.queue_depth, 10);
    cr_assert_eq(c.role, DN_ROLE_SCORER);
    /* A flag before --config still beats the file: the file is read first. */
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--set", "io_threads=3", "--config", path)), DN_OK);
    cr_assert_eq(c.io_threads, 3);
    cr_assert_eq(c.role, DN_ROLE_TRAINER);
}

Test(config, config_file_from_env_and_flags_for_every_path_key, .init = setup, .fini = teardown)
{
    dn_config c;
    dn_error err;
    int help;
    write_conf("max_batch = 4\n");
    setenv("DEVNET_CONFIG", path, 1);
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--model", "m.model")), DN_OK, "%s", err.msg);
    cr_assert_eq(c.max_batch, 4, "DEVNET_CONFIG names the file");
    cr_assert_str_eq(c.model, "m.model");
    /* --config wins over DEVNET_CONFIG; an empty --config means no file. */
    setenv("DEVNET_CONFIG", "/nonexistent.conf", 1);
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--config", path)), DN_OK, "%s", err.msg);
    cr_assert_eq(c.max_batch, 4);
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--config", "")), DN_OK, "%s", err.msg);
    cr_assert_eq(c.max_batch, 16);
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--workers", "1")), DN_EIO);
    cr_assert(strstr(err.msg, "/nonexistent.conf"), "%s", err.msg);
    unsetenv("DEVNET_CONFIG");
    cr_assert_eq(from_args(&c, &err, &help,
                           ARGS("--model", "a", "--data-dir", "b", "--listen", "0.0.0.0:1", "--workers", "2",
                                "--api-key", "k", "--role", "trainer", "--backbone", "c", "--train-data", "d")),
                 DN_OK, "%s", err.msg);
    cr_assert_str_eq(c.model, "a");
    cr_assert_str_eq(c.data_dir, "b");
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.port, 1);
    cr_assert_eq(c.workers, 2);
    cr_assert_str_eq(c.api_key, "k");
    cr_assert_eq(c.role, DN_ROLE_TRAINER);
    cr_assert_str_eq(c.backbone, "c");
    cr_assert_str_eq(c.train_data, "d");
}

Test(config, env_keys_and_foreign_variables, .init = clear_env)
{
    dn_config c, d;
    dn_error err;
    dn_config_defaults(&d);
    setenv("DEVNET_SHARED", "/somewhere/else", 1);
    setenv("DEVNET_CACHE", "/tmp/cache", 1);
    setenv("DEVNET_NOT_A_KEY", "x", 1);
    dn_config_defaults(&c);
    cr_assert_eq(dn_config_load_env(&c, &err), DN_OK, "%s", err.msg);
    cr_assert(same_config(&c, &d), "variables that are not settings are ignored");
    setenv("DEVNET_MAX_BODY_BYTES", "1M", 1);
    setenv("DEVNET_LISTEN", "[::1]:9", 1);
    setenv("DEVNET_API_KEY", "", 1);
    setenv("DEVNET_ALLOW_INSECURE_WRITES", "yes", 1);
    cr_assert_eq(dn_config_load_env(&c, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(c.max_body_bytes, 1u << 20);
    cr_assert_str_eq(c.listen_host, "::1");
    cr_assert_eq(c.allow_insecure_writes, 1);
    setenv("DEVNET_IO_THREADS", "many", 1);
    cr_assert_eq(dn_config_load_env(&c, &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "DEVNET_IO_THREADS"), "%s", err.msg);
}

Test(config, command_line_errors, .init = clear_env)
{
    const struct {
        char **argv;
        const char *says;
    } bad[] = {{ARGS("--bogus"), "unknown option --bogus"},
               {ARGS("--model"), "--model needs a value"},
               {ARGS("stray"), "unexpected argument \"stray\""},
               {ARGS("--set", "workers"), "KEY=VALUE"},
               {ARGS("--set", "nope=1"), "unknown setting \"nope\""},
               {ARGS("--workers", "-2"), "--workers: "},
               {ARGS("--listen", "nohost"), "--listen: "},
               {ARGS("-x"), "unknown option -x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dn_config c;
        dn_error err;
        int help = 7;
        cr_assert_eq(from_args(&c, &err, &help, bad[i].argv), DN_EINVAL, "case %zu", i);
        cr_assert(strstr(err.msg, bad[i].says), "want \"%s\" in: %s", bad[i].says, err.msg);
        cr_assert_eq(help, 0);
    }
    dn_config c;
    dn_error err;
    int help;
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--workers", "3", "--help")), DN_OK);
    cr_assert_eq(help, 1);
    cr_assert_eq(from_args(&c, &err, &help, ARGS("-h", "--config", "/nonexistent")), DN_OK,
                 "help needs no readable file");
    cr_assert_eq(help, 1);
    /* A flag's value may look like anything, even another flag. */
    cr_assert_eq(from_args(&c, &err, &help, ARGS("--api-key", "--help")), DN_OK, "%s", err.msg);
    cr_assert_eq(help, 0);
    cr_assert_str_eq(c.api_key, "--help");
}

Test(config, json_hides_the_api_key)
{
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    cJSON *j = dn_config_json(&c);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "api_key")), "");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "listen")), "127.0.0.1:8080");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "role")), "all");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "allow_insecure_writes")));
    cr_assert_float_eq(cJSON_GetObjectItem(j, "max_body_bytes")->valuedouble, 33554432.0, 0);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "retrain_max_fpr")->valuedouble, 0.05, 1e-12);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "retrain_head_input")), "patches");
    cr_assert_eq(cJSON_GetArraySize(j), 30, "one member per key");
    cJSON_Delete(j);
    cr_assert_eq(set(&c, "api_key", "hunter2", &err), DN_OK);
    j = dn_config_json(&c);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "api_key")), "(set)");
    char *text = cJSON_PrintUnformatted(j);
    cr_assert_null(strstr(text, "hunter2"));
    free(text);
    cJSON_Delete(j);
}

Test(config, backbone_sha256_takes_64_hex_digits_in_either_case)
{
    dn_config c;
    dn_error err;
    dn_config_defaults(&c);
    cr_assert_str_eq(c.backbone_sha256, "");
    const char *upper = "E0932E6BDADBCF1BA6341B0C5BDE1A121FA9F8214158D43161169DE5AE395570";
    cr_assert_eq(set(&c, "backbone_sha256", upper, &err), DN_OK, "%s", err.msg);
    cr_assert_str_eq(c.backbone_sha256, "e0932e6bdadbcf1ba6341b0c5bde1a121fa9f8214158d43161169de5ae395570");
    cr_assert_eq(set(&c, "backbone_sha256", "e0932e6b", &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "backbone_sha256") && strstr(err.msg, "64 hexadecimal"), "%s", err.msg);
    char bad[65];
    memset(bad, 'a', 64);
    bad[63] = 'g';
    bad[64] = '\0';
    cr_assert_eq(set(&c, "backbone_sha256", bad, &err), DN_EINVAL);
    cr_assert_str_eq(c.backbone_sha256, "e0932e6bdadbcf1ba6341b0c5bde1a121fa9f8214158d43161169de5ae395570",
                     "unchanged on error");
    cr_assert_eq(set(&c, "backbone_sha256", "", &err), DN_OK);
    cr_assert_str_eq(c.backbone_sha256, "");
    cr_assert_eq(set(&c, "max_header_bytes", "4K", &err), DN_EINVAL, "below libmicrohttpd's needs");
    cr_assert_eq(set(&c, "max_header_bytes", "64K", &err), DN_OK, "%s", err.msg);
    cr_assert_eq(c.max_header_bytes, 65536u);
}

static char *usage_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    dn_config_usage(f);
    fclose(f);
    return text;
}

Test(config, usage_lists_flags_rule_and_every_key)
{
    char *text = usage_text();
    dn_config c;
    dn_config_defaults(&c);
    cJSON *j = dn_config_json(&c), *item;
    cJSON_ArrayForEach(item, j)
    {
        char line[128];
        snprintf(line, sizeof line, "\n  %s = ", item->string);
        cr_assert(strstr(text, line), "usage lacks %s", item->string);
    }
    cJSON_Delete(j);
    static const char *const want[] = {"--config FILE", "--set KEY=VALUE", "--listen HOST:PORT", "--help",
                                       "DEVNET_<KEY>", "DEVNET_MAX_BODY_BYTES", "max_body_bytes = 32M"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(text, want[i]), "usage lacks %s", want[i]);
    free(text);
}

Test(config, shipped_file_loads_to_the_defaults, .init = clear_env)
{
    dn_config c, d;
    dn_error err;
    dn_config_defaults(&d);
    dn_config_defaults(&c);
    cr_assert_eq(dn_config_load_file(&c, "configs/devnetd.conf", &err), DN_OK, "%s", err.msg);
    cr_assert(same_config(&c, &d));
}

/* configs/devnetd.conf writes each key as "# help" then "#key = default". Uncommented, the
 * file must load to the defaults, and each pair must match the usage text (the table). */
Test(config, shipped_file_documents_every_key_as_the_table_does, .init = setup, .fini = teardown)
{
    size_t len;
    char *conf = (char *)dn_test_read_file("configs/devnetd.conf", &len);
    cr_assert_not_null(conf, "run the tests from the repository root");
    char *usage = usage_text();
    FILE *out = fopen(path, "w");
    cr_assert_not_null(out);
    int seen = 0;
    for (char *line = strtok(conf, "\n"), *prev = NULL; line; prev = line, line = strtok(NULL, "\n")) {
        if (line[0] != '#' || line[1] < 'a' || line[1] > 'z' || !strstr(line, " = "))
            continue;
        fprintf(out, "%s\n", line + 1);
        char want[512];
        snprintf(want, sizeof want, "\n  %s\n      %s\n", line + 1, prev ? prev + 2 : "");
        cr_assert(strstr(usage, want), "conf and usage disagree on:%s", want);
        seen++;
    }
    cr_assert_eq(fclose(out), 0);
    cr_assert_eq(seen, 30, "every key, once");
    dn_config c, d;
    dn_error err;
    dn_config_defaults(&c);
    dn_config_defaults(&d);
    cr_assert_eq(dn_config_load_file(&c, path, &err), DN_OK, "%s", err.msg);
    cr_assert(same_config(&c, &d));
    free(usage);
    free(conf);
}
