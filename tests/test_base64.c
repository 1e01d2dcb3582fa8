/* dn_base64: RFC 4648 vectors both ways, round trips of every length, both alphabets,
 * whitespace, and the refusals (bad characters, wrong or misplaced padding). */
#include "test_util.h"

#include "dn_base64.h"

static const struct {
    const char *plain, *encoded;
} RFC4648[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},     {"foo", "Zm9v"},
               {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};

#define N_VECTORS (sizeof RFC4648 / sizeof RFC4648[0])

/* Decodes the NUL-terminated s into an exactly sized buffer (so that ASan sees any write
 * past dn_base64_decoded_max); returns -1 or the decoded length. */
static long decode(const char *s, unsigned char *copy_out)
{
    size_t n = strlen(s), bound = dn_base64_decoded_max(n), len = 0;
    unsigned char *out = malloc(bound ? bound : 1);
    int rc = dn_base64_decode(s, n, out, &len);
    if (rc == 0) {
        cr_assert_leq(len, bound, "decoded %zu bytes over the bound %zu", len, bound);
        if (copy_out)
            memcpy(copy_out, out, len);
    }
    free(out);
    return rc == 0 ? (long)len : -1;
}

Test(base64, encodes_the_rfc4648_vectors)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        size_t n = strlen(RFC4648[i].plain);
        char out[16];
        cr_assert_eq(dn_base64_encoded_len(n), strlen(RFC4648[i].encoded));
        dn_base64_encode((const unsigned char *)RFC4648[i].plain, n, out);
        cr_assert_str_eq(out, RFC4648[i].encoded);
    }
}

Test(base64, decodes_the_rfc4648_vectors_with_and_without_padding)
{
    for (size_t i = 0; i < N_VECTORS; i++) {
        unsigned char out[16];
        long n = decode(RFC4648[i].encoded, out);
        cr_assert_eq(n, (long)strlen(RFC4648[i].plain), "%s", RFC4648[i].encoded);
        cr_assert_eq(memcmp(out, RFC4648[i].plain, (size_t)n), 0, "%s", RFC4648[i].encoded);
        char bare[16];
        snprintf(bare, sizeof bare, "%s", RFC4648[i].encoded);
        bare[strcspn(bare, "=")] = '\0';
        cr_assert_eq(decode(bare, out), n, "unpadded %s", bare);
        cr_assert_eq(memcmp(out, RFC4648[i].plain, (size_t)n), 0, "unpadded %s", bare);
    }
}

/* Both alphabets, and the wrapped lines a client may send. */
static void check_variants(const unsigned char *data, size_t n, const char *enc)
{
    size_t m = strlen(enc);
    char *alt = malloc(2 * m + 2);
    unsigned char *back = malloc(n + 1);
    for (size_t i = 0; i <= m; i++)
        alt[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
    cr_assert_eq(decode(alt, back), (long)n, "url-safe, %zu bytes", n);
    cr_assert_eq(memcmp(back, data, n), 0);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        alt[k++] = enc[i];
        if (i % 7 == 6)
            alt[k++] = i % 2 ? '\n' : ' ';
    }
    alt[k] = '\0';
    cr_assert_eq(decode(alt, back), (long)n, "with whitespace, %zu bytes", n);
    cr_assert_eq(memcmp(back, data, n), 0);
    free(alt);
    free(back);
}

Test(base64, round_trips_random_bytes_of_every_length)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned char data[300], back[300];
    char enc[401];
    for (size_t n = 0; n <= sizeof data; n++) {
        for (size_t i = 0; i < n; i++)
            data[i] = (unsigned char)dn_test_rand(&seed);
        size_t m = dn_base64_encoded_len(n);
        enc[m] = 'X';
        dn_base64_encode(data, n, enc);
        cr_assert_eq(strlen(enc), m, "length %zu", n);
        cr_assert_eq(decode(enc, back), (long)n, "length %zu", n);
        cr_assert_eq(memcmp(back, data, n), 0, "length %zu", n);
        check_variants(data, n, enc);
    }
}

Test(base64, decoded_max_is_tight_for_unpadded_input)
{
    for (size_t n = 0; n < 100; n++)
        cr_assert_eq(dn_base64_decoded_max(n), n * 3 / 4, "n %zu", n);
}

Test(base64, refuses_characters_outside_the_alphabets)
{
    const char *bad[] = {"Zm9v!", "Zm.9v", "Zm9v\"", "Zm9\x80", "Zm9v%", "Zm9v\\", "Zm9v:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(decode(bad[i], NULL), -1, "%s", bad[i]);
    unsigned char out[8];
    size_t len;
    cr_assert_eq(dn_base64_decode("Zm\0v", 4, out, &len), -1, "an embedded NUL is refused");
}

Test(base64, refuses_wrong_padding_and_a_dangling_character)
{
    const char *bad[] = {"Zm9v=",  "Zm9v==", "Zg=",   "Zg===",    "Zm8==", "Zm8=x",
                         "Zg==Zg==", "=",    "==",    "Z",        "Zm9vY", "Zm9vY===",
                         "Zg=\n=x", "Z===",  "Zm=8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(decode(bad[i], NULL), -1, "%s", bad[i]);
    cr_assert_eq(decode("Zg= =\r\n", NULL), 1, "whitespace may surround the padding");
    cr_assert_eq(decode(" \n\t", NULL), 0, "only whitespace decodes to nothing");
}
