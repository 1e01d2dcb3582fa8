#include "dn_multipart.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What follows a match of CRLF "--" boundary. */
enum { DELIM_NONE, DELIM_PART, DELIM_CLOSE, DELIM_BAD, DELIM_CONTENT };

typedef struct param {
    dn_mp_span name, value;
    int quoted;
} param;

void dn_multipart_init(dn_multipart *mp)
{
    mp->parts = NULL;
    mp->n_parts = mp->cap = 0;
}

void dn_multipart_free(dn_multipart *mp)
{
    free(mp->parts);
    dn_multipart_init(mp);
}

int dn_mp_span_is(dn_mp_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static int span_ieq(dn_mp_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

/* Header values may be folded over lines, so CR and LF count as white space. */
static int is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *skip_lws(const char *p, const char *end)
{
    while (p < end && is_lws(*p))
        p++;
    return p;
}

static dn_mp_span trim(const char *p, const char *end)
{
    p = skip_lws(p, end);
    while (end > p && is_lws(end[-1]))
        end--;
    return (dn_mp_span){p, (size_t)(end - p)};
}

/* The next `; name=value` parameter after *pos (the value being a token or a quoted
 * string). Text that is not a parameter is skipped up to the next ';'. Returns 1, 0 at
 * the end, -1 on an unterminated quoted string. */
static int next_param(const char **pos, const char *end, param *out)
{
    const char *p = *pos;
    for (;;) {
        while (p < end && *p != ';')
            p++;
        if (p == end)
            return 0;
        p = skip_lws(p + 1, end);
        const char *name = p;
        while (p < end && *p != '=' && *p != ';' && !is_lws(*p))
            p++;
        out->name = (dn_mp_span){name, (size_t)(p - name)};
        p = skip_lws(p, end);
        if (p < end && *p == '=' && out->name.len > 0)
            break;
    }
    p = skip_lws(p + 1, end);
    const char *v = p;
    out->quoted = p < end && *p == '"';
    if (out->quoted) {
        for (v = ++p; p < end && *p != '"'; p++)
            if (*p == '\\' && p + 1 < end)
                p++;
        if (p >= end)
            return -1;
        out->value = (dn_mp_span){v, (size_t)(p - v)};
        p++;
    } else {
        while (p < end && *p != ';' && !is_lws(*p))
            p++;
        out->value = (dn_mp_span){v, (size_t)(p - v)};
    }
    *pos = p;
    return 1;
}

/* Copies a parameter value into out (cap bytes), undoing quoted-string escapes.
 * Returns its length, or -1 when it does not fit. */
static long copy_value(const param *pr, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < pr->value.len; i++) {
        char c = pr->value.ptr[i];
        if (pr->quoted && c == '\\' && i + 1 < pr->value.len)
            c = pr->value.ptr[++i];
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return (long)n;
}

static int has_control_char(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

int dn_multipart_boundary(const char *content_type, char *out, size_t cap, dn_error *err)
{
    const char *p = content_type ? content_type : "", *end = p + strlen(p);
    param pr;
    int rc;
    while ((rc = next_param(&p, end, &pr)) == 1 && !span_ieq(pr.name, "boundary"))
        ;
    if (rc == -1)
        return dn_error_set(err, DN_EFORMAT, "unterminated quoted string in the Content-Type");
    if (rc == 0)
        return dn_error_set(err, DN_EFORMAT, "the Content-Type has no boundary parameter");
    char buf[DN_MULTIPART_MAX_BOUNDARY + 1];
    long n = copy_value(&pr, buf, sizeof buf);
    if (n < 0)
        return dn_error_set(err, DN_EFORMAT, "the boundary is longer than %d characters",
                            DN_MULTIPART_MAX_BOUNDARY);
    if (n == 0 || has_control_char(buf))
        return dn_error_set(err, DN_EFORMAT, "the boundary is empty or holds control characters");
    if ((size_t)n + 1 > cap)
        return dn_error_set(err, DN_EINVAL, "boundary buffer too small (%zu bytes)", cap);
    memcpy(out, buf, (size_t)n + 1);
    return DN_OK;
}

/* The first occurrence of needle[0..m) in h[0..n), m >= 1. Not memmem: its ASan and
 * libFuzzer interceptor checks the whole haystack on every call, which would make the
 * resumed delimiter search quadratic under the fuzzer; memchr's check stops at the hit.
 * Each candidate costs at most m bytes of memcmp, so the scan stays linear. */
static const void *find(const void *h, size_t n, const char *needle, size_t m)
{
    const unsigned char *p = h, *end = p + n;
    while ((size_t)(end - p) >= m) {
        const unsigned char *c = memchr(p, needle[0], (size_t)(end - p) - m + 1);
        if (!c || memcmp(c + 1, needle + 1, m - 1) == 0)
            return c;
        p = c + 1;
    }
    return NULL;
}

/* Classifies what follows a delimiter match ending at b[p]: "--" closes; optional
 * transport padding then CRLF opens a part (*next: its first byte); any other character
 * right away means the match was content (RFC 2046 lets a line merely start with the
 * boundary); a body ending there is truncated; anything else is malformed. */
static int delimiter_tail(const unsigned char *b, size_t len, size_t p, size_t *next)
{
    if (p + 2 <= len && b[p] == '-' && b[p + 1] == '-')
        return DELIM_CLOSE;
    size_t q = p;
    while (q < len && (b[q] == ' ' || b[q] == '\t'))
        q++;
    if (q + 2 <= len && b[q] == '\r' && b[q + 1] == '\n') {
        *next = q + 2;
        return DELIM_PART;
    }
    if (q == p && q < len && b[q] != '\r' && b[q] != '\n')
        return DELIM_CONTENT;
    if (q == len || (q + 1 == len && b[q] == '\r'))
        return DELIM_NONE;
    return DELIM_BAD;
}

/* Finds the first delimiter at or after from; *at is where its CRLF starts. Each search
 * resumes past the previous match, so the scan stays linear in the body. */
static int find_delimiter(const unsigned char *b, size_t len, size_t from, const char *delim,
                          size_t dlen, size_t *at, size_t *next)
{
    while (from < len) {
        const unsigned char *hit = find(b + from, len - from, delim, dlen);
        if (!hit)
            return DELIM_NONE;
        *at = (size_t)(hit - b);
        int kind = delimiter_tail(b, len, *at + dlen, next);
        if (kind != DELIM_CONTENT)
            return kind;
        from = *at + 1;
    }
    return DELIM_NONE;
}

/* The first delimiter may open the body without the CRLF that precedes later ones. */
static int first_delimiter(const unsigned char *b, size_t len, const char *delim, size_t dlen,
                           size_t *at, size_t *next)
{
    if (len >= dlen - 2 && memcmp(b, delim + 2, dlen - 2) == 0) {
        int kind = delimiter_tail(b, len, dlen - 2, next);
        if (kind != DELIM_CONTENT) {
            *at = 0;
            return kind;
        }
    }
    return find_delimiter(b, len, 0, delim, dlen, at, next);
}

/* The end of the header starting at p: the CRLF not followed by a folded line, or end. */
static const char *header_end(const char *p, const char *end)
{
    for (;;) {
        const char *cr = find(p, (size_t)(end - p), "\r\n", 2);
        if (!cr)
            return end;
        if (cr + 2 < end && (cr[2] == ' ' || cr[2] == '\t')) {
            p = cr + 2;
            continue;
        }
        return cr;
    }
}

static int parse_disposition(dn_mp_span value, dn_mp_part *part)
{
    const char *p = value.ptr, *end = value.ptr + value.len;
    param pr;
    int rc;
    while ((rc = next_param(&p, end, &pr)) == 1) {
        if (span_ieq(pr.name, "name"))
            part->name = pr.value;
        else if (span_ieq(pr.name, "filename"))
            part->filename = pr.value;
    }
    return rc;
}

/* Parses the header block h[0..n): lines separated by CRLF, no empty line. */
static int parse_headers(const char *h, size_t n, dn_mp_part *part, int index, dn_error *err)
{
    const char *p = h, *end = h + n;
    while (p < end) {
        const char *line_end = header_end(p, end);
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (!colon)
            return dn_error_set(err, DN_EFORMAT, "part %d has a header line without ':'", index);
        dn_mp_span name = trim(p, colon), value = trim(colon + 1, line_end);
        if (span_ieq(name, "content-disposition") && parse_disposition(value, part) != 0)
            return dn_error_set(err, DN_EFORMAT,
                                "part %d has an unterminated quoted string in its Content-Disposition",
                                index);
        if (span_ieq(name, "content-type"))
            part->content_type = value;
        p = line_end == end ? end : line_end + 2;
    }
    return DN_OK;
}

/* Splits one part b[0..n) (between delimiter lines) into headers and payload. A part
 * without headers starts with the empty line. index counts from 1, for messages. */
static int parse_part(const unsigned char *b, size_t n, dn_mp_part *part, int index, dn_error *err)
{
    memset(part, 0, sizeof *part);
    if (n == 0 || (n >= 2 && b[0] == '\r' && b[1] == '\n')) {
        part->data = n ? b + 2 : b;
        part->len = n ? n - 2 : 0;
        return DN_OK;
    }
    size_t limit = n < DN_MULTIPART_MAX_PART_HEADER + 4 ? n : DN_MULTIPART_MAX_PART_HEADER + 4;
    const unsigned char *blank = find(b, limit, "\r\n\r\n", 4);
    if (!blank && n > DN_MULTIPART_MAX_PART_HEADER)
        return dn_error_set(err, DN_ETOOBIG, "part %d has headers over %d bytes", index,
                            DN_MULTIPART_MAX_PART_HEADER);
    if (!blank)
        return dn_error_set(err, DN_EFORMAT, "part %d has no empty line after its headers", index);
    size_t hlen = (size_t)(blank - b);
    int rc = parse_headers((const char *)b, hlen, part, index, err);
    part->data = blank + 4;
    part->len = n - hlen - 4;
    return rc;
}

static int add_part(dn_multipart *mp, const unsigned char *b, size_t n, dn_error *err)
{
    if (mp->n_parts == DN_MULTIPART_MAX_PARTS)
        return dn_error_set(err, DN_ETOOBIG, "more than %d parts", DN_MULTIPART_MAX_PARTS);
    if (mp->n_parts == mp->cap) {
        int cap = mp->cap ? 2 * mp->cap : 8;
        cap = cap < DN_MULTIPART_MAX_PARTS ? cap : DN_MULTIPART_MAX_PARTS;
        dn_mp_part *parts = realloc(mp->parts, (size_t)cap * sizeof *parts);
        if (!parts)
            return dn_error_set(err, DN_ENOMEM, "out of memory for %d parts", cap);
        mp->parts = parts;
        mp->cap = cap;
    }
    int rc = parse_part(b, n, &mp->parts[mp->n_parts], mp->n_parts + 1, err);
    if (rc == DN_OK)
        mp->n_parts++;
    return rc;
}

/* Walks the delimiters from the first; every part ends at the next delimiter's CRLF. */
static int split(dn_multipart *mp, const unsigned char *b, size_t len, const char *boundary,
                 const char *delim, size_t dlen, dn_error *err)
{
    size_t at = 0, next = 0;
    int kind = first_delimiter(b, len, delim, dlen, &at, &next);
    if (kind == DELIM_NONE)
        return dn_error_set(err, DN_EFORMAT, "no complete delimiter line \"--%s\" in the body", boundary);
    while (kind == DELIM_PART) {
        size_t start = next;
        kind = find_delimiter(b, len, start, delim, dlen, &at, &next);
        if (kind == DELIM_NONE)
            return dn_error_set(err, DN_EFORMAT,
                                "part %d is not closed: no closing delimiter \"--%s--\" (truncated body?)",
                                mp->n_parts + 1, boundary);
        if (kind == DELIM_BAD)
            break;
        int rc = add_part(mp, b + start, at - start, err);
        if (rc != DN_OK)
            return rc;
    }
    if (kind == DELIM_BAD)
        return dn_error_set(err, DN_EFORMAT, "malformed delimiter line at byte %zu", at);
    return DN_OK; /* DELIM_CLOSE: the epilogue after it is ignored */
}

int dn_multipart_parse(dn_multipart *mp, const unsigned char *body, size_t len,
                       const char *boundary, dn_error *err)
{
    mp->n_parts = 0;
    size_t blen = boundary ? strlen(boundary) : 0;
    if (blen == 0 || blen > DN_MULTIPART_MAX_BOUNDARY)
        return dn_error_set(err, DN_EINVAL, "the boundary must have 1 to %d characters",
                            DN_MULTIPART_MAX_BOUNDARY);
    char delim[4 + DN_MULTIPART_MAX_BOUNDARY];
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    int rc = split(mp, body ? body : (const unsigned char *)"", len, boundary, delim, 4 + blen, err);
    if (rc != DN_OK)
        mp->n_parts = 0;
    return rc;
}
