/* dn_log: the daemon's logs, JSON lines on stderr (or any FILE), one object per line:
 *   {"ts":"2026-11-29T18:40:01.123Z","level":"info","event":"model_loaded", ...fields}
 * A line is formatted whole before a mutex is taken and written with one call under it,
 * so lines from concurrent threads never interleave. The output and the minimum level are
 * process-wide, as logging is; set them once at start-up with dn_log_setup. */
#ifndef DN_LOG_H
#define DN_LOG_H

#include <cJSON.h>
#include <stdio.h>

typedef enum dn_log_level { DN_LOG_DEBUG, DN_LOG_INFO, DN_LOG_WARN, DN_LOG_ERROR } dn_log_level;

/* Where lines go (NULL = stderr) and the lowest level written. Before any call: stderr,
 * info. The caller keeps out open until it points the log elsewhere. */
void dn_log_setup(FILE *out, dn_log_level min);

/* "debug", "info", "warn" or "error" (any case) into *l: DN_OK, else DN_EINVAL. */
int dn_log_level_parse(const char *s, dn_log_level *l);
const char *dn_log_level_name(dn_log_level l);

/* Whether a record at level l would be written: lets callers skip building costly fields. */
int dn_log_enabled(dn_log_level l);

/* A wall-clock time (seconds since the epoch) as RFC 3339 UTC, with milliseconds
 * ("2026-11-29T18:40:01.123Z") or without ("2026-11-29T18:40:01Z"): the logs' timestamps,
 * and the times the API reports. */
void dn_log_time(double t, int with_ms, char out[32]);

/* Writes one record. fields (owned, freed here; may be NULL) is an object whose members
 * follow ts, level and event; members named ts, level or event are dropped so those three
 * always mean what they say. */
void dn_log(dn_log_level l, const char *event, cJSON *fields);

/* dn_log with fields {"message": printf-style text}. */
void dn_log_msg(dn_log_level l, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
