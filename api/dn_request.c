#include "dn_request.h"

#include "dn_base64.h"
#include "dn_multipart.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ACCEPTED_TYPES "image/jpeg, image/png, multipart/form-data or application/json"

enum { MEDIA_OTHER, MEDIA_IMAGE, MEDIA_MULTIPART, MEDIA_JSON };

int dn_api_fail_set(dn_api_fail *f, int status, const char *code, const char *fmt, ...)
{
    if (!f)
        return status;
    f->status = status;
    snprintf(f->code, sizeof f->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return status;
}

void dn_api_input_init(dn_api_input *in)
{
    memset(in, 0, sizeof *in);
}

void dn_api_input_free(dn_api_input *in)
{
    for (int i = 0; i < in->n_owned; i++)
        free(in->owned[i]);
    free(in->owned);
    free(in->images);
    dn_api_input_init(in);
}

int dn_api_label_parse(const char *s)
{
    if (s && strcmp(s, "anomaly") == 0)
        return 1;
    if (s && strcmp(s, "normal") == 0)
        return 0;
    return -1;
}

/* The media type of a Content-Type value: its first token, before any parameters. */
static void media_type(const char *ct, const char **type, size_t *n)
{
    ct += strspn(ct, " \t");
    *type = ct;
    *n = strcspn(ct, "; \t");
}

static int media_kind(const char *ct)
{
    static const struct {
        const char *name;
        int kind;
    } known[] = {{"image/jpeg", MEDIA_IMAGE}, {"image/png", MEDIA_IMAGE},
                 {"multipart/form-data", MEDIA_MULTIPART}, {"application/json", MEDIA_JSON}};
    if (!ct)
        return MEDIA_OTHER;
    const char *type;
    size_t n;
    media_type(ct, &type, &n);
    const char *rest = type + n + strspn(type + n, " \t");
    if (*rest && *rest != ';')
        return MEDIA_OTHER;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == n && strncasecmp(type, known[i].name, n) == 0)
            return known[i].kind;
    return MEDIA_OTHER;
}

static int unsupported(const char *ct, dn_api_fail *f)
{
    if (!ct)
        return dn_api_fail_set(f, 415, "unsupported_media_type",
                               "no Content-Type: send " ACCEPTED_TYPES);
    const char *type;
    size_t n;
    media_type(ct, &type, &n);
    return dn_api_fail_set(f, 415, "unsupported_media_type",
                           "%.*s is not accepted: send " ACCEPTED_TYPES,
                           (int)(n < 64 ? n : 64), type);
}

static int out_of_memory(dn_api_fail *f)
{
    return dn_api_fail_set(f, 500, "out_of_memory", "out of memory while reading the request");
}

static int too_many(int n, int max, dn_api_fail *f)
{
    return dn_api_fail_set(f, 413, "batch_too_large", "%d images; the limit is %d", n, max);
}

/* Room for n images and, for base64 bodies, n_owned decoded buffers. */
static int alloc_input(dn_api_input *in, int n, int n_owned, dn_api_fail *f)
{
    in->images = calloc((size_t)n, sizeof *in->images);
    in->owned = n_owned ? calloc((size_t)n_owned, sizeof *in->owned) : NULL;
    return !in->images || (n_owned && !in->owned) ? out_of_memory(f) : 0;
}

static int set_label(dn_api_input *in, const char *s, size_t n, dn_api_fail *f)
{
    if (n > DN_API_MAX_LABEL || memchr(s, '\0', n))
        return dn_api_fail_set(f, 400, "invalid_label",
                               "the label must be a text of at most %d characters", DN_API_MAX_LABEL);
    memcpy(in->label, s, n);
    in->label[n] = '\0';
    return 0;
}

/* ---- raw image body ---- */

static int parse_raw(const unsigned char *body, size_t len, dn_api_input *in, dn_api_fail *f)
{
    int rc = alloc_input(in, 1, 0, f);
    if (rc)
        return rc;
    in->images[0] = (dn_api_blob){body, len};
    in->n_images = 1;
    return 0;
}

/* ---- multipart/form-data ---- */

/* A second label or mask would leave it unclear which one the client meant. */
static int take_field(const dn_mp_part *p, dn_api_input *in, int *seen_label, dn_api_fail *f)
{
    if (dn_mp_span_is(p->name, "label")) {
        if ((*seen_label)++)
            return dn_api_fail_set(f, 400, "invalid_multipart", "more than one \"label\" part");
        return set_label(in, (const char *)p->data, p->len, f);
    }
    if (dn_mp_span_is(p->name, "mask")) {
        if (in->mask.data)
            return dn_api_fail_set(f, 400, "invalid_multipart", "more than one \"mask\" part");
        in->mask = (dn_api_blob){p->data, p->len};
    }
    return 0;
}

static int take_parts(const dn_multipart *mp, int max_images, dn_api_input *in, dn_api_fail *f)
{
    int n = 0;
    for (int i = 0; i < mp->n_parts; i++)
        n += dn_mp_span_is(mp->parts[i].name, "image");
    if (n == 0)
        return dn_api_fail_set(f, 400, "missing_image", "the form has no \"image\" part");
    if (n > max_images)
        return too_many(n, max_images, f);
    in->batch = n > 1;
    int rc = alloc_input(in, n, 0, f), seen_label = 0;
    for (int i = 0; i < mp->n_parts && rc == 0; i++) {
        const dn_mp_part *p = &mp->parts[i];
        if (!dn_mp_span_is(p->name, "image")) {
            rc = take_field(p, in, &seen_label, f);
        } else if (p->len == 0) {
            rc = dn_api_fail_set(f, 400, "empty_image", "image part %d is empty", in->n_images + 1);
        } else {
            in->images[in->n_images++] = (dn_api_blob){p->data, p->len};
        }
    }
    return rc;
}

static int parse_multipart(const char *ct, const unsigned char *body, size_t len, int max_images,
                           dn_api_input *in, dn_api_fail *f)
{
    char boundary[DN_MULTIPART_MAX_BOUNDARY + 1];
    dn_error err;
    if (dn_multipart_boundary(ct, boundary, sizeof boundary, &err) != DN_OK)
        return dn_api_fail_set(f, 400, "invalid_multipart", "%s", err.msg);
    dn_multipart mp;
    dn_multipart_init(&mp);
    int rc = dn_multipart_parse(&mp, body, len, boundary, &err);
    if (rc == DN_ENOMEM)
        rc = out_of_memory(f);
    else if (rc != DN_OK)
        rc = dn_api_fail_set(f, 400, "invalid_multipart", "%s", err.msg);
    else
        rc = take_parts(&mp, max_images, in, f);
    dn_multipart_free(&mp);
    return rc;
}

/* ---- application/json ---- */

/* null counts as absent, so that clients may always send their optional fields. */
static const cJSON *field(const cJSON *root, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsNull(v) ? NULL : v;
}

/* Decodes a base64 string, after any "data:<type>;base64," prefix, into a buffer that in
 * owns. what names the field in messages. */
static int decode_b64(const char *s, const char *what, dn_api_input *in, dn_api_blob *out,
                      dn_api_fail *f)
{
    size_t n = strlen(s);
    if (strncasecmp(s, "data:", 5) == 0) {
        const char *comma = memchr(s, ',', n);
        size_t head = comma ? (size_t)(comma - s) : 0;
        if (!comma || head < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
            return dn_api_fail_set(f, 400, "invalid_base64",
                                   "%s: a data URL must read data:<type>;base64,<data>", what);
        s = comma + 1;
        n -= head + 1;
    }
    /* + 1: malloc(0) may return NULL, which would read as out of memory */
    unsigned char *buf = malloc(dn_base64_decoded_max(n) + 1);
    if (!buf)
        return out_of_memory(f);
    in->owned[in->n_owned++] = buf;
    size_t m;
    if (dn_base64_decode(s, n, buf, &m) != 0)
        return dn_api_fail_set(f, 400, "invalid_base64", "%s is not valid base64", what);
    *out = (dn_api_blob){buf, m};
    return 0;
}

static int json_image(const cJSON *v, const char *what, dn_api_input *in, dn_api_fail *f)
{
    if (!cJSON_IsString(v))
        return dn_api_fail_set(f, 400, "invalid_json", "%s must be a base64 string", what);
    dn_api_blob *b = &in->images[in->n_images];
    int rc = decode_b64(v->valuestring, what, in, b, f);
    if (rc == 0 && b->len == 0)
        rc = dn_api_fail_set(f, 400, "empty_image", "%s is empty", what);
    in->n_images += rc == 0;
    return rc;
}

static int json_images(const cJSON *image, const cJSON *images, dn_api_input *in, dn_api_fail *f)
{
    if (image)
        return json_image(image, "image", in, f);
    const cJSON *v;
    int rc = 0;
    cJSON_ArrayForEach(v, images)
    {
        char what[32];
        snprintf(what, sizeof what, "images[%d]", in->n_images);
        if ((rc = json_image(v, what, in, f)) != 0)
            break;
    }
    return rc;
}

static int json_label_mask(const cJSON *root, dn_api_input *in, dn_api_fail *f)
{
    const cJSON *label = field(root, "label"), *mask = field(root, "mask");
    if (label && !cJSON_IsString(label))
        return dn_api_fail_set(f, 400, "invalid_json", "\"label\" must be a string");
    if (mask && !cJSON_IsString(mask))
        return dn_api_fail_set(f, 400, "invalid_json", "\"mask\" must be a base64 string");
    int rc = label ? set_label(in, label->valuestring, strlen(label->valuestring), f) : 0;
    return rc || !mask ? rc : decode_b64(mask->valuestring, "mask", in, &in->mask, f);
}

static int json_fields(const cJSON *root, int max_images, dn_api_input *in, dn_api_fail *f)
{
    const cJSON *image = field(root, "image"), *images = field(root, "images");
    if (image && images)
        return dn_api_fail_set(f, 400, "invalid_json", "give \"image\" or \"images\", not both");
    if (!image && !images)
        return dn_api_fail_set(f, 400, "missing_image", "the body has no \"image\" nor \"images\"");
    if (images && !cJSON_IsArray(images))
        return dn_api_fail_set(f, 400, "invalid_json", "\"images\" must be an array of base64 strings");
    int n = image ? 1 : cJSON_GetArraySize(images);
    if (n == 0)
        return dn_api_fail_set(f, 400, "missing_image", "\"images\" is empty");
    if (n > max_images)
        return too_many(n, max_images, f);
    in->batch = images != NULL;
    int rc = alloc_input(in, n, n + 1, f);
    if (rc == 0)
        rc = json_label_mask(root, in, f);
    return rc ? rc : json_images(image, images, in, f);
}

static int is_json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The body is not NUL-terminated, hence the length-bounded parse; its error position is
 * taken from the parse end rather than cJSON_GetErrorPtr, a global shared by threads. */
static int parse_json(const unsigned char *body, size_t len, int max_images, dn_api_input *in,
                      dn_api_fail *f)
{
    const char *text = (const char *)body, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t at = end && end >= text && (size_t)(end - text) <= len ? (size_t)(end - text) : len;
    if (!root)
        return dn_api_fail_set(f, 400, "invalid_json", "the body is not valid JSON (error at byte %zu)",
                               at);
    while (at < len && is_json_space(body[at]))
        at++;
    int rc;
    if (at < len)
        rc = dn_api_fail_set(f, 400, "invalid_json", "unexpected text after the JSON value at byte %zu",
                             at);
    else if (!cJSON_IsObject(root))
        rc = dn_api_fail_set(f, 400, "invalid_json", "the body must be a JSON object");
    else
        rc = json_fields(root, max_images, in, f);
    cJSON_Delete(root);
    return rc;
}

/* ---- entry point ---- */

int dn_api_parse_input(const char *content_type, const unsigned char *body, size_t len,
                       int max_images, dn_api_input *in, dn_api_fail *fail)
{
    dn_api_input_free(in);
    if (fail)
        *fail = (dn_api_fail){0};
    if (max_images < 1 || max_images > DN_API_MAX_BATCH)
        max_images = DN_API_MAX_BATCH;
    int kind = media_kind(content_type), rc;
    if (kind == MEDIA_OTHER)
        rc = unsupported(content_type, fail);
    else if (!body || len == 0)
        rc = dn_api_fail_set(fail, 400, "empty_body", "the request body is empty");
    else if (kind == MEDIA_IMAGE)
        rc = parse_raw(body, len, in, fail);
    else if (kind == MEDIA_MULTIPART)
        rc = parse_multipart(content_type, body, len, max_images, in, fail);
    else
        rc = parse_json(body, len, max_images, in, fail);
    if (rc)
        dn_api_input_free(in);
    return rc;
}
