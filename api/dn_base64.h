/* dn_base64: RFC 4648 base64, for images carried in JSON bodies and heatmaps sent back.
 *
 * The decoder takes the standard and the URL-safe alphabet, ignores whitespace (JSON
 * clients often wrap at 76 columns), and accepts missing padding; padding that is present
 * must be right. Anything else is refused rather than skipped, so that a corrupt upload
 * is reported as such instead of decoding to a different image. */
#ifndef DN_BASE64_H
#define DN_BASE64_H

#include <stddef.h>

/* Characters dn_base64_encode writes for n bytes, excluding the NUL. */
size_t dn_base64_encoded_len(size_t n);

/* Writes the padded standard encoding of in[0..n) and a NUL: out must hold
 * dn_base64_encoded_len(n) + 1 bytes. */
void dn_base64_encode(const unsigned char *in, size_t n, char *out);

/* Upper bound of the bytes decoded from n input characters: the size of out to give to
 * dn_base64_decode. */
size_t dn_base64_decoded_max(size_t n);

/* Decodes in[0..n) into out (dn_base64_decoded_max(n) bytes) and sets *out_len.
 * Returns 0, or -1 on a character outside the alphabets, bad padding or a dangling
 * final character; out is then unspecified. */
int dn_base64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len);

#endif
