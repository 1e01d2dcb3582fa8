/* dn_sha256: SHA-256 (FIPS 180-4), incremental and one-shot.
 *
 * Used to fingerprint model files (a head records the hash of the backbone it was
 * trained on), so it must agree bit for bit with `sha256sum`. */
#ifndef DN_SHA256_H
#define DN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "dn_error.h"

typedef struct dn_sha256 {
    uint32_t h[8];     /* chaining state */
    uint64_t len;      /* bytes hashed so far */
    uint8_t block[64]; /* pending partial block */
    size_t used;       /* bytes in block */
} dn_sha256;

void dn_sha256_init(dn_sha256 *ctx);
void dn_sha256_update(dn_sha256 *ctx, const void *data, size_t len);
/* Writes the digest; ctx must be re-initialised before it is used again. */
void dn_sha256_final(dn_sha256 *ctx, uint8_t out[32]);
void dn_sha256_buf(const void *data, size_t len, uint8_t out[32]);

/* Lower-case hex, NUL-terminated. */
void dn_sha256_hex(const uint8_t d[32], char out[65]);

/* Hashes a whole file into lower-case hex; DN_EIO with the errno text on failure. */
int dn_sha256_file(const char *path, char hex[65], dn_error *err);

#endif
