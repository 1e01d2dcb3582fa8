/* dn_log: the shape of a line, level filtering, and whole lines under concurrent writers.
 * Each test runs in its own process, so the process-wide log settings do not leak. */
#include "test_util.h"

#include "dn_error.h"
#include "dn_log.h"

#include <pthread.h>
#include <time.h>

static char *buf;
static size_t buf_len;
static FILE *mem;

static void capture(dn_log_level min)
{
    mem = open_memstream(&buf, &buf_len);
    cr_assert_not_null(mem);
    dn_log_setup(mem, min);
}

/* Stops capturing and returns the lines written, each parsed (a cJSON array). */
static cJSON *captured(void)
{
    dn_log_setup(NULL, DN_LOG_INFO);
    cr_assert_eq(fclose(mem), 0);
    cr_assert(buf_len == 0 || buf[buf_len - 1] == '\n', "the last line is whole");
    cJSON *lines = cJSON_CreateArray();
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(o), "not a JSON object: %s", line);
        cJSON_AddItemToArray(lines, o);
    }
    free(buf);
    return lines;
}

static const char *str_of(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

Test(log, line_shape)
{
    capture(DN_LOG_DEBUG);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "version", 3);
    cJSON_AddStringToObject(f, "path", "a\"b\nc");
    time_t before = time(NULL);
    dn_log(DN_LOG_INFO, "model_loaded", f);
    cJSON *lines = captured();
    cr_assert_eq(cJSON_GetArraySize(lines), 1, "a newline inside a value stays escaped");
    cJSON *o = cJSON_GetArrayItem(lines, 0);
    static const char *const order[] = {"ts", "level", "event", "version", "path"};
    const cJSON *item = o->child;
    for (int i = 0; i < 5; i++, item = item->next)
        cr_assert_str_eq(item->string, order[i]);
    cr_assert_null(item);
    cr_assert_str_eq(str_of(o, "level"), "info");
    cr_assert_str_eq(str_of(o, "event"), "model_loaded");
    cr_assert_str_eq(str_of(o, "path"), "a\"b\nc");
    cr_assert_eq(cJSON_GetObjectItem(o, "version")->valueint, 3);
    /* 2026-11-29T18:40:01.123Z, UTC, now. */
    const char *ts = str_of(o, "ts");
    struct tm tm = {0};
    int ms = -1;
    cr_assert_eq(strlen(ts), 24, "%s", ts);
    const char *rest = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    cr_assert(rest && sscanf(rest, ".%3dZ", &ms) == 1 && ms >= 0 && ms < 1000 && rest[4] == 'Z', "%s", ts);
    time_t t = timegm(&tm);
    /* A second of slack: time() may read a coarser clock than the log's. */
    cr_assert(t >= before - 1 && t <= time(NULL) + 1, "%s is not now", ts);
    cJSON_Delete(lines);
}

Test(log, level_filtering)
{
    capture(DN_LOG_WARN);
    cr_assert(!dn_log_enabled(DN_LOG_INFO));
    cr_assert(dn_log_enabled(DN_LOG_WARN));
    dn_log(DN_LOG_DEBUG, "d", cJSON_CreateObject()); /* fields of dropped records are freed */
    dn_log_msg(DN_LOG_INFO, "i", "dropped %d", 1);
    dn_log(DN_LOG_WARN, "w", NULL);
    dn_log_msg(DN_LOG_ERROR, "e", "kept");
    cJSON *lines = captured();
    cr_assert_eq(cJSON_GetArraySize(lines), 2);
    cr_assert_str_eq(str_of(cJSON_GetArrayItem(lines, 0), "level"), "warn");
    cr_assert_str_eq(str_of(cJSON_GetArrayItem(lines, 1), "level"), "error");
    cr_assert_str_eq(str_of(cJSON_GetArrayItem(lines, 1), "event"), "e");
    cJSON_Delete(lines);
}

Test(log, level_names)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    dn_log_level l;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(dn_log_level_parse(names[i], &l), DN_OK);
        cr_assert_eq((int)l, i);
        cr_assert_str_eq(dn_log_level_name(l), names[i]);
    }
    cr_assert_eq(dn_log_level_parse("ERROR", &l), DN_OK);
    cr_assert_eq(l, DN_LOG_ERROR);
    cr_assert_eq(dn_log_level_parse("warning", &l), DN_EINVAL);
    cr_assert_eq(dn_log_level_parse("", &l), DN_EINVAL);
    cr_assert_eq(dn_log_level_parse(NULL, &l), DN_EINVAL);
}

Test(log, message_and_reserved_fields)
{
    capture(DN_LOG_INFO);
    dn_log_msg(DN_LOG_ERROR, "bind_failed", "port %d: %s", 80, "Permission \"denied\"\n");
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "level", "fake");
    cJSON_AddNumberToObject(f, "ts", 1);
    cJSON_AddStringToObject(f, "event", "fake");
    cJSON_AddTrueToObject(f, "keep");
    dn_log(DN_LOG_INFO, "real", f);
    dn_log(DN_LOG_INFO, NULL, NULL);
    cJSON *lines = captured();
    cr_assert_eq(cJSON_GetArraySize(lines), 3);
    cJSON *a = cJSON_GetArrayItem(lines, 0), *b = cJSON_GetArrayItem(lines, 1), *c = cJSON_GetArrayItem(lines, 2);
    cr_assert_str_eq(str_of(a, "message"), "port 80: Permission \"denied\"\n");
    cr_assert_str_eq(str_of(b, "level"), "info");
    cr_assert_str_eq(str_of(b, "event"), "real");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(b, "ts")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "keep")));
    cr_assert_eq(cJSON_GetArraySize(b), 4, "reserved names are dropped, not duplicated");
    cr_assert_str_eq(str_of(c, "event"), "");
    cr_assert_eq(cJSON_GetArraySize(c), 3);
    cJSON_Delete(lines);
}

#define THREADS 8
#define PER_THREAD 2000

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    char pad[301];
    memset(pad, 'a' + t, 300);
    pad[300] = '\0';
    for (int i = 0; i < PER_THREAD; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "thread", t);
        cJSON_AddNumberToObject(f, "seq", i);
        cJSON_AddStringToObject(f, "pad", pad);
        if (i % 2)
            dn_log(DN_LOG_INFO, "tick", f);
        else {
            cJSON_Delete(f);
            dn_log_msg(DN_LOG_WARN, "tock", "%d %d %s", t, i, pad);
        }
    }
    return NULL;
}

/* Many threads at once: every line whole and valid, every record there once, each thread's
 * records in its own order. */
Test(log, concurrent_writers_produce_whole_lines)
{
    capture(DN_LOG_DEBUG);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    cJSON *lines = captured(), *o;
    cr_assert_eq(cJSON_GetArraySize(lines), THREADS * PER_THREAD);
    int next[THREADS] = {0};
    cJSON_ArrayForEach(o, lines)
    {
        int t, i;
        const char *msg = str_of(o, "message");
        if (msg) {
            cr_assert_eq(sscanf(msg, "%d %d", &t, &i), 2, "%s", msg);
            cr_assert_eq(strlen(msg), strlen("0 ") + (size_t)snprintf(NULL, 0, "%d", i) + 301);
        } else {
            t = cJSON_GetObjectItem(o, "thread")->valueint;
            i = cJSON_GetObjectItem(o, "seq")->valueint;
            cr_assert_eq(strlen(str_of(o, "pad")), 300);
        }
        cr_assert(t >= 0 && t < THREADS);
        cr_assert_eq(i, next[t], "thread %d: record %d after %d", t, i, next[t] - 1);
        next[t]++;
    }
    cJSON_Delete(lines);
}
