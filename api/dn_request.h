/* dn_request: the images (and feedback label and mask) of a POST /score or POST /feedback
 * body, whatever its encoding: a raw image/jpeg or image/png body, multipart/form-data
 * (fields "image" repeated, "label", "mask"), or application/json ({"image": b64} or
 * {"images": [b64, ...]}, "label", "mask"; base64 may carry a data-URL prefix).
 *
 * Knows nothing of the HTTP library, but answers in HTTP statuses with a stable
 * snake_case code and a message, ready for dn_api_error_json. Image bytes are not checked
 * here: the decoder does that. */
#ifndef DN_REQUEST_H
#define DN_REQUEST_H

#include "dn_limits.h"

#include <stddef.h>

typedef struct dn_api_blob {
    const unsigned char *data;
    size_t len; /* 0 = absent */
} dn_api_blob;

typedef struct dn_api_fail {
    int status;     /* HTTP status: 400, 413, 415, 500 */
    char code[32];  /* empty_body, empty_image, missing_image, batch_too_large, invalid_json,
                     * invalid_base64, invalid_multipart, invalid_label,
                     * unsupported_media_type, out_of_memory */
    char message[256];
} dn_api_fail;

/* Records an HTTP status, a stable snake_case code and a printf message on f (NULL is
 * allowed); returns status. */
int dn_api_fail_set(dn_api_fail *f, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef struct dn_api_input {
    dn_api_blob *images; /* in request order; into the body or into owned buffers */
    int n_images;
    int batch; /* the body is a batch (JSON "images", several "image" parts): answer a list */
    dn_api_blob mask;                  /* feedback: optional PNG mask */
    char label[DN_API_MAX_LABEL + 1];  /* feedback: "" when the body has none */
    unsigned char **owned;             /* buffers decoded from base64 */
    int n_owned;
} dn_api_input;

void dn_api_input_init(dn_api_input *in);
void dn_api_input_free(dn_api_input *in);

/* Parses a body by its Content-Type header value (NULL when absent; the media type is
 * case-insensitive and its parameters other than a boundary are ignored). max_images caps
 * a batch; values outside 1..DN_API_MAX_BATCH mean DN_API_MAX_BATCH. in must have been
 * initialised; what it held is released first. The blobs may point into body, which must
 * then outlive in. Returns 0, or the HTTP status (also in *fail, NULL allowed), in being
 * left empty. The label is copied, not validated (see dn_api_label_parse). */
int dn_api_parse_input(const char *content_type, const unsigned char *body, size_t len,
                       int max_images, dn_api_input *in, dn_api_fail *fail);

/* "anomaly" -> 1, "normal" -> 0, anything else (NULL too) -> -1. */
int dn_api_label_parse(const char *s);

#endif
