/* Helpers shared by the criterion test files (header-only, static). */
#ifndef DN_TEST_UTIL_H
#define DN_TEST_UTIL_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Path of ../shared (or $DEVNET_SHARED), or NULL when absent. */
static inline const char *dn_test_shared(void)
{
    const char *env = getenv("DEVNET_SHARED");
    const char *dir = env && *env ? env : "../shared";
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? dir : NULL;
}

/* Skips the calling test with a clear message when ../shared is absent. */
#define DN_REQUIRE_SHARED(var)                                                          \
    const char *var = dn_test_shared();                                                  \
    if (!var)                                                                            \
        cr_skip_test("../shared not found (set DEVNET_SHARED): this test needs its data")

/* Path of the converted backbone ($DEVNET_BACKBONE, else build/backbone.safetensors). */
static inline const char *dn_test_backbone(void)
{
    const char *env = getenv("DEVNET_BACKBONE");
    const char *path = env && *env ? env : "build/backbone.safetensors";
    struct stat st;
    return stat(path, &st) == 0 ? path : NULL;
}

#define DN_REQUIRE_BACKBONE(var)                                                        \
    const char *var = dn_test_backbone();                                                \
    if (!var)                                                                            \
        cr_skip_test("no backbone (make backbone needs ../shared/models): skipped")

/* Creates a fresh directory /tmp/<prefix>XXXXXX into dir (at least 64 bytes). */
static inline void dn_test_mkdtemp(char *dir, const char *prefix)
{
    snprintf(dir, 64, "/tmp/%sXXXXXX", prefix);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

static inline int dn_test_rm_entry(const char *path, const struct stat *sb, int flag,
                                   struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a directory tree (rm -rf without a shell). */
static inline void dn_test_rmtree(const char *dir)
{
    nftw(dir, dn_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Deterministic xorshift generator for random test data. */
static inline uint32_t dn_test_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 32);
}

/* Uniform float in [lo, hi). */
static inline float dn_test_uniform(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)(dn_test_rand(s) >> 8) / 16777216.0f;
}

/* Reads a whole file into a malloc'd buffer with a NUL after its *len bytes (so text files
 * are C strings); NULL on failure. */
static inline uint8_t *dn_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n < 0 ? NULL : malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#endif
