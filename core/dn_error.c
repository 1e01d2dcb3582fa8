#include "dn_error.h"

#include <stdarg.h>
#include <stdio.h>

void dn_error_clear(dn_error *err)
{
    if (!err)
        return;
    err->code = DN_OK;
    err->msg[0] = '\0';
}

int dn_error_set(dn_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

const char *dn_error_name(int code)
{
    switch (code) {
    case DN_OK: return "ok";
    case DN_EINVAL: return "invalid_argument";
    case DN_ENOMEM: return "out_of_memory";
    case DN_EIO: return "io";
    case DN_EFORMAT: return "bad_format";
    case DN_EUNSUPPORTED: return "unsupported";
    case DN_ETOOBIG: return "too_large";
    case DN_ENOSPC: return "no_space";
    case DN_EMISMATCH: return "mismatch";
    case DN_EBUSY: return "busy";
    case DN_ETIMEDOUT: return "timed_out";
    default: return "unknown";
    }
}
