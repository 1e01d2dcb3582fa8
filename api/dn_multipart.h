/* dn_multipart: a multipart/form-data body (RFC 7578 over RFC 2046) split into its parts
 * without copying: every name, filename, content type and payload points into the body,
 * which must outlive the result.
 *
 * Written for hostile input: nothing is read past the given length, there is no
 * recursion, the delimiter search is linear, part headers and the number of parts are
 * bounded (dn_limits.h). A line that starts with the delimiter but goes on
 * with other characters is content, as in RFC 2046's grammar; a body without the close
 * delimiter is refused as truncated. */
#ifndef DN_MULTIPART_H
#define DN_MULTIPART_H

#include "dn_error.h"
#include "dn_limits.h"

#include <stddef.h>

/* A piece of header text inside the body; not NUL-terminated; len 0 when absent. Quoted
 * values are given without their quotes and with any backslash escapes left as sent. */
typedef struct dn_mp_span {
    const char *ptr;
    size_t len;
} dn_mp_span;

typedef struct dn_mp_part {
    dn_mp_span name;         /* Content-Disposition name= */
    dn_mp_span filename;     /* Content-Disposition filename= */
    dn_mp_span content_type; /* Content-Type header value, trimmed */
    const unsigned char *data;
    size_t len;
} dn_mp_part;

typedef struct dn_multipart {
    dn_mp_part *parts; /* in body order */
    int n_parts;
    int cap;
} dn_multipart;

void dn_multipart_init(dn_multipart *mp);
void dn_multipart_free(dn_multipart *mp);

/* Copies the boundary parameter of a Content-Type value (quoted or not, parameter names
 * case-insensitive) into out, NUL-terminated. Returns DN_OK, DN_EFORMAT when it is
 * missing, empty, longer than DN_MULTIPART_MAX_BOUNDARY or holds a control character,
 * DN_EINVAL when out is too small. */
int dn_multipart_boundary(const char *content_type, char *out, size_t cap, dn_error *err);

/* Splits body[0..len) at boundary (as dn_multipart_boundary gives it) into mp, which is
 * emptied first. Returns DN_OK; DN_EFORMAT for a malformed or truncated body; DN_ETOOBIG
 * for more than DN_MULTIPART_MAX_PARTS parts or a part header block over
 * DN_MULTIPART_MAX_PART_HEADER bytes; DN_ENOMEM. mp holds no parts after a failure. */
int dn_multipart_parse(dn_multipart *mp, const unsigned char *body, size_t len,
                       const char *boundary, dn_error *err);

/* 1 when s is exactly the NUL-terminated text lit (case-sensitive, as form field names). */
int dn_mp_span_is(dn_mp_span s, const char *lit);

#endif
