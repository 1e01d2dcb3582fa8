#include "dn_sha256.h"
#include "test_util.h"

#include <unistd.h>

static char *hex_of(const void *data, size_t len, char out[65])
{
    uint8_t d[32];
    dn_sha256_buf(data, len, d);
    dn_sha256_hex(d, out);
    return out;
}

#define ABC448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define ABC896                                                                                     \
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"             \
    "klmnopqrlmnopqrsmnopqrstnopqrstu"

Test(sha256, nist_short_vectors)
{
    char hex[65];
    cr_assert_str_eq(hex_of("", 0, hex),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cr_assert_str_eq(hex_of("abc", 3, hex),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert_str_eq(hex_of(ABC448, strlen(ABC448), hex),
                     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    cr_assert_str_eq(hex_of(ABC896, strlen(ABC896), hex),
                     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a' fed in chunks of odd sizes, so that block boundaries fall everywhere. */
Test(sha256, nist_million_a_incremental)
{
    static const size_t sizes[] = {1, 3, 7, 63, 64, 65, 127, 1000, 4097};
    char a[4097], hex[65];
    memset(a, 'a', sizeof a);
    dn_sha256 ctx;
    dn_sha256_init(&ctx);
    size_t left = 1000000;
    for (int i = 0; left; i = (i + 1) % 9) {
        size_t n = sizes[i] < left ? sizes[i] : left;
        dn_sha256_update(&ctx, a, n);
        left -= n;
    }
    uint8_t d[32];
    dn_sha256_final(&ctx, d);
    dn_sha256_hex(d, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every length from 0 to 300 (all padding cases) split at random points into three
 * updates, plus empty updates, must equal the one-shot digest. */
Test(sha256, incremental_equals_one_shot)
{
    uint8_t buf[300];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)dn_test_rand(&seed);
    for (size_t len = 0; len <= sizeof buf; len++) {
        uint8_t want[32], got[32];
        dn_sha256_buf(buf, len, want);
        for (int trial = 0; trial < 8; trial++) {
            size_t a = len ? dn_test_rand(&seed) % (len + 1) : 0;
            size_t b = a + (len - a ? dn_test_rand(&seed) % (len - a + 1) : 0);
            dn_sha256 ctx;
            dn_sha256_init(&ctx);
            dn_sha256_update(&ctx, buf, a);
            dn_sha256_update(&ctx, buf + a, 0);
            dn_sha256_update(&ctx, buf + a, b - a);
            dn_sha256_update(&ctx, buf + b, len - b);
            dn_sha256_final(&ctx, got);
            cr_assert_eq(memcmp(want, got, 32), 0, "len %zu split at %zu/%zu", len, a, b);
        }
    }
}

/* File tests share one mkdtemp directory holding at most the file "f". */
static char dir[32], path[64];

static void setup(void)
{
    strcpy(dir, "/tmp/dn_sha_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/f", dir);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

static void write_f(const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* Padding boundaries checked against an independent implementation (coreutils). */
Test(sha256, padding_boundaries_match_sha256sum, .init = setup, .fini = teardown)
{
    static const size_t lens[] = {55, 56, 57, 63, 64, 65, 119, 120, 128};
    uint8_t buf[128];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        char cmd[128], want[65] = "", hex[65];
        write_f(buf, lens[k]);
        snprintf(cmd, sizeof cmd, "sha256sum %s", path);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        int got = fscanf(p, "%64s", want);
        pclose(p);
        if (got != 1)
            cr_skip_test("sha256sum not available");
        cr_assert_str_eq(hex_of(buf, lens[k], hex), want, "length %zu", lens[k]);
    }
}

Test(sha256, file_hash, .init = setup, .fini = teardown)
{
    char hex[65], want[65];
    /* Many read chunks, the last one partial. */
    size_t len = 200001;
    uint8_t *buf = malloc(len);
    uint64_t seed = 42;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)dn_test_rand(&seed);
    write_f(buf, len);
    dn_error err;
    dn_error_clear(&err);
    cr_assert_eq(dn_sha256_file(path, hex, &err), DN_OK, "%s", err.msg);
    cr_assert_str_eq(hex, hex_of(buf, len, want));
    free(buf);

    write_f("", 0);
    cr_assert_eq(dn_sha256_file(path, hex, &err), DN_OK);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    unlink(path);
    cr_assert_eq(dn_sha256_file(path, hex, &err), DN_EIO);
    cr_assert_eq(err.code, DN_EIO);
    cr_assert_not_null(strstr(err.msg, path), "%s", err.msg);
    /* A directory opens but cannot be read. */
    err.msg[0] = '\0';
    cr_assert_eq(dn_sha256_file(dir, hex, &err), DN_EIO);
    cr_assert(err.msg[0] != '\0');
}
