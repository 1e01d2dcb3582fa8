#include "dn_base64.h"

#include <stdint.h>

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum { SEXTET_PAD = 64, SEXTET_SPACE, SEXTET_BAD };

/* The 6-bit value of c in either alphabet, or one of the SEXTET_ classes. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    switch (c) {
    case '+': case '-': return 62;
    case '/': case '_': return 63;
    case '=': return SEXTET_PAD;
    case ' ': case '\t': case '\r': case '\n': case '\f': case '\v': return SEXTET_SPACE;
    default: return SEXTET_BAD;
    }
}

size_t dn_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void dn_base64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = ALPHABET[v >> 18];
        *out++ = ALPHABET[v >> 12 & 63];
        *out++ = ALPHABET[v >> 6 & 63];
        *out++ = ALPHABET[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = ALPHABET[v >> 18];
        *out++ = ALPHABET[v >> 12 & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = ALPHABET[v >> 18];
        *out++ = ALPHABET[v >> 12 & 63];
        *out++ = ALPHABET[v >> 6 & 63];
        *out++ = '=';
    }
    *out = '\0';
}

size_t dn_base64_decoded_max(size_t n)
{
    return n / 4 * 3 + n % 4 * 3 / 4;
}

/* After the first '=' only padding and whitespace may follow, and exactly as many '=' as
 * the last group lacks (k characters of 4 were data). */
static int check_padding(const char *in, size_t i, size_t n, int k)
{
    int pads = 0;
    for (; i < n; i++) {
        int v = sextet((unsigned char)in[i]);
        if (v == SEXTET_PAD)
            pads++;
        else if (v != SEXTET_SPACE)
            return -1;
    }
    return k >= 2 && pads == 4 - k ? 0 : -1;
}

int dn_base64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len)
{
    uint32_t acc = 0;
    int k = 0; /* sextets in acc */
    size_t o = 0, i = 0;
    for (; i < n; i++) {
        int v = sextet((unsigned char)in[i]);
        if (v == SEXTET_SPACE)
            continue;
        if (v == SEXTET_PAD)
            break;
        if (v == SEXTET_BAD)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        if (++k == 4) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
            acc = 0;
            k = 0;
        }
    }
    if (k == 1 || (i < n && check_padding(in, i, n, k) != 0))
        return -1;
    if (k == 2) {
        out[o++] = (unsigned char)(acc >> 4);
    } else if (k == 3) {
        out[o++] = (unsigned char)(acc >> 10);
        out[o++] = (unsigned char)(acc >> 2);
    }
    *out_len = o;
    return 0;
}
