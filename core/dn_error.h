/* dn_error: integer error codes with the message kept on the caller's handle.
 *
 * Every fallible function returns an int (DN_OK or a DN_E* code) and, when given a
 * dn_error, writes a human-readable message there. Nothing is kept in globals, so
 * handles used from different threads never see each other's messages. */
#ifndef DN_ERROR_H
#define DN_ERROR_H

#include <stddef.h>

enum {
    DN_OK = 0,
    DN_EINVAL = 1,       /* bad argument or option */
    DN_ENOMEM = 2,       /* allocation failed */
    DN_EIO = 3,          /* read/write/open failed (errno text in the message) */
    DN_EFORMAT = 4,      /* input is not what it claims to be: corrupt, truncated, malformed */
    DN_EUNSUPPORTED = 5, /* well-formed but outside what we handle (CMYK JPEG, unknown op, ...) */
    DN_ETOOBIG = 6,      /* over a named limit of dn_limits.h */
    DN_ENOSPC = 7,       /* disk full */
    DN_EMISMATCH = 8,    /* files that do not belong together (wrong backbone hash, version) */
    DN_EBUSY = 9,        /* a bounded queue is full, or the component is shutting down */
    DN_ETIMEDOUT = 10,   /* a deadline or time budget ran out */
};

#define DN_ERROR_MSG_MAX 256

typedef struct dn_error {
    int code;
    char msg[DN_ERROR_MSG_MAX];
} dn_error;

/* Clears the handle (code DN_OK, empty message). NULL is allowed. */
void dn_error_clear(dn_error *err);

/* Records code and a printf-style message on err (NULL is allowed) and returns code, so
 * that error paths read `return dn_error_set(err, DN_EFORMAT, "...", ...);`. */
int dn_error_set(dn_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Short stable name of a code ("format", "unsupported", ...), for logs and JSON. */
const char *dn_error_name(int code);

#endif
