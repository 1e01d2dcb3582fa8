#include "dn_log.h"

#include "dn_error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The mutex guards the output; the level is atomic so that filtered-out records cost no
 * lock. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_out; /* NULL: stderr, which is not a constant initializer */
static atomic_int log_min = DN_LOG_INFO;

void dn_log_setup(FILE *out, dn_log_level min)
{
    pthread_mutex_lock(&log_mu);
    log_out = out;
    pthread_mutex_unlock(&log_mu);
    atomic_store(&log_min, (int)min);
}

int dn_log_level_parse(const char *s, dn_log_level *l)
{
    for (int i = DN_LOG_DEBUG; s && i <= DN_LOG_ERROR; i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *l = (dn_log_level)i;
            return DN_OK;
        }
    return DN_EINVAL;
}

const char *dn_log_level_name(dn_log_level l)
{
    return l >= DN_LOG_DEBUG && l <= DN_LOG_ERROR ? level_names[l] : "unknown";
}

int dn_log_enabled(dn_log_level l)
{
    return (int)l >= atomic_load(&log_min);
}

void dn_log_time(double t, int with_ms, char out[32])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms)
        snprintf(out + n, 32 - n, ".%03dZ", (int)((t - (double)s) * 1000) % 1000);
    else
        snprintf(out + n, 32 - n, "Z");
}

/* UTC with milliseconds: 2026-11-29T18:40:01.123Z */
static void format_ts(char out[32])
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    dn_log_time((double)now.tv_sec + now.tv_nsec / 1e9, 1, out);
}

static int reserved(const char *key)
{
    return !key || !strcmp(key, "ts") || !strcmp(key, "level") || !strcmp(key, "event");
}

/* Moves the members of fields (left empty) to the end of line; 0 when out of memory. */
static int move_fields(cJSON *line, cJSON *fields)
{
    cJSON *item;
    while (fields && (item = fields->child)) {
        cJSON_DetachItemViaPointer(fields, item);
        if (reserved(item->string)) {
            cJSON_Delete(item);
            continue;
        }
        /* AddItemToObject copies the key and would free the item's own: hand it over. */
        char *key = item->string;
        item->string = NULL;
        int ok = cJSON_AddItemToObject(line, key, item);
        cJSON_free(key);
        if (!ok) {
            cJSON_Delete(item);
            return 0;
        }
    }
    return 1;
}

/* The record as one malloc'd line without its newline; NULL when out of memory. */
static char *format_record(dn_log_level l, const char *event, cJSON *fields)
{
    char ts[32];
    format_ts(ts);
    char *text = NULL;
    cJSON *line = cJSON_CreateObject();
    if (line && cJSON_AddStringToObject(line, "ts", ts) &&
        cJSON_AddStringToObject(line, "level", dn_log_level_name(l)) &&
        cJSON_AddStringToObject(line, "event", event ? event : "") && move_fields(line, fields))
        text = cJSON_PrintUnformatted(line);
    cJSON_Delete(line);
    return text;
}

void dn_log(dn_log_level l, const char *event, cJSON *fields)
{
    if (!dn_log_enabled(l)) {
        cJSON_Delete(fields);
        return;
    }
    char *text = format_record(l, event, fields);
    cJSON_Delete(fields);
    pthread_mutex_lock(&log_mu);
    FILE *out = log_out ? log_out : stderr;
    /* One stdio call per line: even writers that bypass our mutex cannot split it. */
    fprintf(out, "%s\n", text ? text : "{\"level\":\"error\",\"event\":\"log_out_of_memory\"}");
    fflush(out);
    pthread_mutex_unlock(&log_mu);
    cJSON_free(text);
}

void dn_log_msg(dn_log_level l, const char *event, const char *fmt, ...)
{
    if (!dn_log_enabled(l))
        return;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    cJSON *fields = cJSON_CreateObject();
    if (fields && n >= 0)
        cJSON_AddStringToObject(fields, "message", msg);
    if (n >= 0)
        free(msg);
    dn_log(l, event, fields);
}
