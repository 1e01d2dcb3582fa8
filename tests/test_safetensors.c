#include "dn_safetensors.h"
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- fixture: one mkdtemp directory per test ---- */

static char dir[64];

static void setup(void)
{
    dn_test_mkdtemp(dir, "dn_st_");
}

static void teardown(void)
{
    chmod(dir, 0700);
    dn_test_rmtree(dir);
}

TestSuite(safetensors, .init = setup, .fini = teardown);

static const char *in_dir(const char *name)
{
    static char path[4][256]; /* a few results stay valid at once */
    static int turn;
    turn = (turn + 1) % 4;
    snprintf(path[turn], sizeof path[turn], "%s/%s", dir, name);
    return path[turn];
}

static int dir_entries(const char *d)
{
    DIR *dp = opendir(d);
    cr_assert_not_null(dp);
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dp);
    return n;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* ---- round trip ---- */

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

Test(safetensors, round_trip)
{
    float scalar1[1] = {3.14159265f}, scalar0[1] = {-2.5f}, bias[5];
    float conv[2 * 3 * 2 * 2];
    uint64_t seed = 7;
    for (size_t i = 0; i < 24; i++)
        conv[i] = dn_test_uniform(&seed, -1, 1);
    /* Bit patterns a lossy path would change: NaN payload, -0, subnormal, inf, max. */
    conv[0] = from_bits(0x7fc12345);
    conv[1] = from_bits(0x80000000);
    conv[2] = from_bits(0x00000001);
    conv[3] = from_bits(0xff800000);
    conv[4] = from_bits(0x7f7fffff);
    for (int i = 0; i < 5; i++)
        bias[i] = (float)i / 3.0f;

    const int64_t s_conv[4] = {2, 3, 2, 2}, s_one[1] = {1}, s_bias[1] = {5}, s_empty[2] = {0, 3};
    static const char *quoted = "say \"hi\" \\ back\\slash\n\ttab /";
    static const char *unicode = "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac";
    dn_st_writer w;
    dn_st_writer_init(&w);
    cr_assert_eq(dn_st_writer_meta(&w, "quoted", "first"), DN_OK);
    cr_assert_eq(dn_st_writer_meta(&w, "quoted", quoted), DN_OK); /* replaces */
    cr_assert_eq(dn_st_writer_meta(&w, "unicode \"key\"", unicode), DN_OK);
    cr_assert_eq(dn_st_writer_add(&w, "features.0.conv.weight", 4, s_conv, conv), DN_OK, "%s",
                 w.err.msg);
    cr_assert_eq(dn_st_writer_add(&w, "one", 1, s_one, scalar1), DN_OK);
    cr_assert_eq(dn_st_writer_add(&w, "scalar", 0, NULL, scalar0), DN_OK);
    cr_assert_eq(dn_st_writer_add(&w, "empty", 2, s_empty, NULL), DN_OK);
    cr_assert_eq(dn_st_writer_add(&w, "bias", 1, s_bias, bias), DN_OK);
    const char *path = in_dir("model.safetensors");
    cr_assert_eq(dn_st_writer_save(&w, path), DN_OK, "%s", w.err.msg);
    dn_st_writer_free(&w);
    dn_st_writer_free(&w);
    cr_assert_eq(dir_entries(dir), 1, "temporary file left behind");

    /* Layout: header padded with spaces so the data area starts 8-byte aligned. */
    size_t len;
    uint8_t *file = dn_test_read_file(path, &len);
    cr_assert_not_null(file);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | file[i];
    cr_assert_eq((8 + hlen) % 8, 0);
    cr_assert_eq(len, 8 + hlen + (24 + 1 + 1 + 0 + 5) * 4);
    cr_assert_eq(file[8], '{');
    cr_assert_eq(file[8 + hlen - 1] == '}' || file[8 + hlen - 1] == ' ', 1);

    dn_safetensors st;
    dn_st_init(&st);
    cr_assert_eq(dn_st_load(&st, path), DN_OK, "%s", st.err.msg);
    const struct {
        const char *name;
        int ndim;
        const int64_t *shape;
        const float *data;
        size_t count;
    } want[] = {
        {"features.0.conv.weight", 4, s_conv, conv, 24},
        {"one", 1, s_one, scalar1, 1},
        {"scalar", 0, NULL, scalar0, 1},
        {"empty", 2, s_empty, NULL, 0},
        {"bias", 1, s_bias, bias, 5},
    };
    cr_assert_eq(st.n_tensors, 5);
    const float *next = (const float *)(const void *)(st.buf + 8 + hlen);
    for (int i = 0; i < 5; i++) {
        const dn_st_tensor *t = &st.tensors[i];
        cr_assert_str_eq(t->name, want[i].name, "tensors keep the order added");
        cr_assert_eq(dn_st_find(&st, want[i].name), t);
        cr_assert_eq(t->ndim, want[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            cr_assert_eq(t->shape[d], want[i].shape[d]);
        cr_assert_eq(t->count, want[i].count);
        cr_assert_eq(t->data, next, "data is contiguous in the order added");
        cr_assert_eq((uintptr_t)t->data % 4, 0);
        if (t->count)
            cr_assert_eq(memcmp(t->data, want[i].data, t->count * 4), 0, "bits of %s", t->name);
        next += t->count;
    }
    cr_assert_str_eq(dn_st_meta(&st, "quoted"), quoted);
    cr_assert_str_eq(dn_st_meta(&st, "unicode \"key\""), unicode);
    cr_assert_null(dn_st_meta(&st, "Quoted"));
    cr_assert_null(dn_st_find(&st, "BIAS"));

    /* The in-memory loader sees the same file. */
    dn_safetensors mem;
    dn_st_init(&mem);
    cr_assert_eq(dn_st_load_memory(&mem, file, len), DN_OK, "%s", mem.err.msg);
    cr_assert_eq(mem.n_tensors, 5);
    cr_assert_eq(memcmp(dn_st_find(&mem, "bias")->data, bias, sizeof bias), 0);
    cr_assert_eq((uintptr_t)mem.buf % 64, 0);

    dn_st_free(&mem);
    dn_st_free(&st);
    dn_st_free(&st);
    cr_assert_null(st.buf);
    free(file);
}

Test(safetensors, save_replaces_existing_and_metadata_only_file)
{
    const char *path = in_dir("m.safetensors");
    cr_assert_eq(write_file(path, "old", 3), 0);
    dn_st_writer w;
    dn_st_writer_init(&w);
    cr_assert_eq(dn_st_writer_meta(&w, "format", "devnet"), DN_OK);
    cr_assert_eq(dn_st_writer_save(&w, path), DN_OK, "%s", w.err.msg);
    dn_st_writer_free(&w);

    dn_safetensors st;
    dn_st_init(&st);
    cr_assert_eq(dn_st_load(&st, path), DN_OK, "%s", st.err.msg);
    cr_assert_eq(st.n_tensors, 0);
    cr_assert_str_eq(dn_st_meta(&st, "format"), "devnet");
    dn_st_free(&st);
    cr_assert_eq(dir_entries(dir), 1);
}

Test(safetensors, writer_refuses_bad_tensors)
{
    float x[4] = {0};
    const int64_t ok[1] = {4}, neg[2] = {-1, -4}, five[5] = {1, 1, 1, 1, 4};
    const int64_t huge[3] = {INT64_C(1) << 32, INT64_C(1) << 32, 16};
    const int64_t past_json[2] = {0, (INT64_C(1) << 53) + 1};
    char long_name[DN_ST_MAX_NAME + 1];
    memset(long_name, 'n', DN_ST_MAX_NAME);
    long_name[DN_ST_MAX_NAME] = '\0';
    dn_st_writer w;
    dn_st_writer_init(&w);
    cr_assert_eq(dn_st_writer_add(&w, "x", 1, ok, x), DN_OK);
    const struct {
        const char *name;
        int ndim;
        const int64_t *shape;
        const float *data;
    } bad[] = {
        {"x", 1, ok, x},        {"__metadata__", 1, ok, x}, {"y", 2, neg, x},
        {"y", 5, five, x},      {"y", -1, ok, x},           {"y", 3, huge, x},
        {"y", 2, past_json, x}, {long_name, 1, ok, x},      {"y", 1, ok, NULL},
        {NULL, 1, ok, x},       {"y", 1, NULL, x},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        w.err.msg[0] = '\0';
        cr_assert_eq(dn_st_writer_add(&w, bad[i].name, bad[i].ndim, bad[i].shape, bad[i].data),
                     DN_EINVAL, "case %zu", i);
        cr_assert(w.err.msg[0] != '\0', "case %zu", i);
    }
    cr_assert_eq(w.n_tensors, 1);
    cr_assert_eq(dn_st_writer_meta(&w, NULL, "v"), DN_EINVAL);
    dn_st_writer_free(&w);
}

/* ---- refusal of broken files ---- */

typedef struct blob {
    uint8_t *buf;
    size_t len;
} blob;

static const float A[6] = {1, 2, 3, 4, 5, 6}, B[4] = {-1, -2, -3, -4};
#define GOOD_HEADER                                                                                \
    "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],"                    \
    "\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}}"

/* A good file written by the writer: metadata {"k":"v"}, a[2,3] then b[4]. */
static blob good_file(void)
{
    const int64_t sa[2] = {2, 3}, sb[1] = {4};
    const char *path = in_dir("good.safetensors");
    dn_st_writer w;
    dn_st_writer_init(&w);
    cr_assert_eq(dn_st_writer_meta(&w, "k", "v"), DN_OK);
    cr_assert_eq(dn_st_writer_add(&w, "a", 2, sa, A), DN_OK);
    cr_assert_eq(dn_st_writer_add(&w, "b", 1, sb, B), DN_OK);
    cr_assert_eq(dn_st_writer_save(&w, path), DN_OK, "%s", w.err.msg);
    dn_st_writer_free(&w);
    blob b;
    b.buf = dn_test_read_file(path, &b.len);
    cr_assert_not_null(b.buf);
    return b;
}

static uint64_t header_len(const blob *b)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b->buf[i];
    return n;
}

static void set_header_len(blob *b, uint64_t n)
{
    for (int i = 0; i < 8; i++)
        b->buf[i] = (uint8_t)(n >> (8 * i));
}

/* A file of the given header (space-padded to keep the data area 8-byte aligned) and data. */
static blob assemble(const char *hdr, const uint8_t *data, size_t data_len)
{
    size_t n = (strlen(hdr) + 7) & ~(size_t)7;
    blob b = {malloc(8 + n + data_len + 1), 8 + n + data_len};
    cr_assert_not_null(b.buf);
    set_header_len(&b, n);
    memset(b.buf + 8, ' ', n);
    memcpy(b.buf + 8, hdr, strlen(hdr));
    if (data_len)
        memcpy(b.buf + 8 + n, data, data_len);
    return b;
}

/* The good file with the first `from` of its header replaced by `to`. */
static blob mutate(const char *from, const char *to)
{
    blob g = good_file();
    size_t n = header_len(&g);
    char *hdr = calloc(1, n + strlen(to) + 1);
    memcpy(hdr, g.buf + 8, n);
    char *at = strstr(hdr, from);
    cr_assert_not_null(at, "the good header lacks '%s'", from);
    char *tail = strdup(at + strlen(from));
    strcpy(at, to);
    strcat(at, tail);
    blob b = assemble(hdr, g.buf + 8 + n, g.len - 8 - n);
    free(tail);
    free(hdr);
    free(g.buf);
    return b;
}

static void expect_refused(blob b, int code, const char *what)
{
    dn_safetensors st;
    dn_st_init(&st);
    int rc = dn_st_load_memory(&st, b.buf, b.len);
    cr_assert_eq(rc, code, "want %s, got %s: '%s'", dn_error_name(code), dn_error_name(rc),
                 st.err.msg);
    cr_assert_eq(st.err.code, code);
    cr_assert(st.err.msg[0] != '\0');
    cr_assert_not_null(strstr(st.err.msg, what), "message '%s' lacks '%s'", st.err.msg, what);
    cr_assert(st.buf == NULL && st.tensors == NULL && st.meta == NULL && st.n_tensors == 0);
    dn_st_free(&st);
    free(b.buf);
}

/* Guards every refusal test below: the harness itself produces loadable files. */
Test(safetensors, harness_baseline_loads)
{
    blob g = good_file();
    cr_assert_eq(header_len(&g), (strlen(GOOD_HEADER) + 7) & ~(size_t)7);
    cr_assert_eq(memcmp(g.buf + 8, GOOD_HEADER, strlen(GOOD_HEADER)), 0, "writer header changed");
    blob same = mutate("\"a\"", "\"a\"");
    blob renamed = mutate("\"b\":{", "\"bb\":{");
    dn_safetensors st;
    dn_st_init(&st);
    cr_assert_eq(dn_st_load_memory(&st, same.buf, same.len), DN_OK, "%s", st.err.msg);
    cr_assert_eq(dn_st_load_memory(&st, renamed.buf, renamed.len), DN_OK, "%s", st.err.msg);
    cr_assert_not_null(dn_st_find(&st, "bb"));
    cr_assert_eq(memcmp(dn_st_find(&st, "bb")->data, B, sizeof B), 0);
    dn_st_free(&st);
    free(g.buf);
    free(same.buf);
    free(renamed.buf);
}

Test(safetensors, refuses_bad_header_length)
{
    blob b = good_file();
    b.len = 7;
    expect_refused(b, DN_EFORMAT, "shorter than");

    b = good_file();
    set_header_len(&b, 0);
    expect_refused(b, DN_EFORMAT, "header length is 0");

    b = good_file();
    set_header_len(&b, DN_ST_MAX_HEADER_BYTES + 1ull);
    expect_refused(b, DN_ETOOBIG, "limit");

    b = good_file();
    set_header_len(&b, UINT64_MAX);
    expect_refused(b, DN_ETOOBIG, "limit");

    b = good_file();
    set_header_len(&b, b.len - 8 + 1);
    expect_refused(b, DN_EFORMAT, "truncated");
}

Test(safetensors, refuses_truncation_anywhere)
{
    blob g = good_file();
    size_t n = header_len(&g);
    const size_t cuts[] = {0, 4, 8, 9, 8 + n / 2, 8 + n - 1, 8 + n, 8 + n + 20, g.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        /* An exact-size copy, so that a read past the end is a sanitizer report. */
        blob b = {malloc(cuts[i] + 1), cuts[i]};
        memcpy(b.buf, g.buf, cuts[i]);
        expect_refused(b, DN_EFORMAT, "");
    }
    /* Through the file loader too. */
    const char *path = in_dir("cut.safetensors");
    cr_assert_eq(write_file(path, g.buf, g.len - 4), 0);
    dn_safetensors st;
    dn_st_init(&st);
    cr_assert_eq(dn_st_load(&st, path), DN_EFORMAT);
    cr_assert_not_null(strstr(st.err.msg, "beyond"), "%s", st.err.msg);
    dn_st_free(&st);
    free(g.buf);
}

Test(safetensors, refuses_bad_json)
{
    expect_refused(mutate("\"a\":{", "\"a\":{{"), DN_EFORMAT, "not valid JSON");
    expect_refused(mutate("\"v\"}", "\"v}"), DN_EFORMAT, "not valid JSON");
    expect_refused(mutate(GOOD_HEADER, "[1,2]"), DN_EFORMAT, "not a JSON object");
    expect_refused(mutate(GOOD_HEADER, GOOD_HEADER "x"), DN_EFORMAT, "trailing");
    expect_refused(mutate(GOOD_HEADER, GOOD_HEADER "{}"), DN_EFORMAT, "trailing");
}

Test(safetensors, refuses_bad_entries)
{
    expect_refused(mutate("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}", "5"),
                   DN_EFORMAT, "'b' is not an object");
    expect_refused(mutate("\"dtype\":\"F32\",", ""), DN_EFORMAT, "no dtype");
    expect_refused(mutate("\"F32\"", "32"), DN_EFORMAT, "no dtype");
    expect_refused(mutate("\"shape\":[2,3],", ""), DN_EFORMAT, "no shape");
    expect_refused(mutate("[2,3]", "\"2x3\""), DN_EFORMAT, "no shape");
    expect_refused(mutate("[2,3]", "[2,3.5]"), DN_EFORMAT, "not an integer");
    expect_refused(mutate("[2,3]", "[2,\"3\"]"), DN_EFORMAT, "not an integer");
    expect_refused(mutate(",\"data_offsets\":[0,24]", ""), DN_EFORMAT, "data_offsets");
    expect_refused(mutate("[0,24]", "[0]"), DN_EFORMAT, "data_offsets");
    expect_refused(mutate("[0,24]", "[0,24,48]"), DN_EFORMAT, "data_offsets");
    expect_refused(mutate("[0,24]", "[0,\"24\"]"), DN_EFORMAT, "data_offsets");
    expect_refused(mutate("[0,24]", "[24,0]"), DN_EFORMAT, "data_offsets");
    expect_refused(mutate("[0,24]", "[-24,0]"), DN_EFORMAT, "data_offsets");
}

Test(safetensors, refuses_unsupported_dtype)
{
    expect_refused(mutate("\"F32\"", "\"BF16\""), DN_EUNSUPPORTED, "'a' has dtype 'BF16'");
    expect_refused(mutate("\"F32\"", "\"f32\""), DN_EUNSUPPORTED, "f32");
}

Test(safetensors, refuses_bad_shapes)
{
    /* Same product (6) as the good shape, so only the named check can refuse these. */
    expect_refused(mutate("[2,3]", "[1,1,1,1,2,3]"), DN_EFORMAT, "dimensions");
    expect_refused(mutate("[2,3]", "[-2,-3]"), DN_EFORMAT, "negative");
    expect_refused(mutate("[2,3]", "[4294967296,4294967296,16]"), DN_EFORMAT, "overflows");
    /* 2^30 * 2^53 wraps to 0 in 64 bits, which would match these empty offsets. */
    expect_refused(mutate("[2,3],\"data_offsets\":[0,24]",
                          "[1073741824,9007199254740992],\"data_offsets\":[0,0]"),
                   DN_EFORMAT, "overflows");
    expect_refused(mutate("[2,3]", "[9007199254740992,2]"), DN_EFORMAT, "overflows");
    expect_refused(mutate("[2,3]", "[1e300]"), DN_EFORMAT, "not an integer");
    expect_refused(mutate("[2,3]", "[18014398509481984,0]"), DN_EFORMAT, "not an integer");
    expect_refused(mutate("[2,3]", "[2,4]"), DN_EFORMAT, "bytes for 8 floats");
    expect_refused(mutate("[0,24]", "[0,20]"), DN_EFORMAT, "bytes for 6 floats");
}

Test(safetensors, refuses_bad_offsets)
{
    /* One more header byte shifts the data area to an odd file offset; nothing else changes. */
    blob g = good_file();
    size_t n = header_len(&g);
    blob b = {malloc(g.len + 1), g.len + 1};
    memcpy(b.buf, g.buf, 8 + n);
    b.buf[8 + n] = ' ';
    memcpy(b.buf + 9 + n, g.buf + 8 + n, g.len - 8 - n);
    set_header_len(&b, n + 1);
    expect_refused(b, DN_EFORMAT, "not 4-byte aligned");
    free(g.buf);

    expect_refused(mutate("[24,40]", "[28,44]"), DN_EFORMAT, "beyond");
    expect_refused(mutate("[24,40]", "[8,24]"), DN_EFORMAT, "overlap");
    expect_refused(mutate("[24,40]", "[0,16]"), DN_EFORMAT, "overlap");
    expect_refused(mutate("[0,24]", "[16,40]"), DN_EFORMAT, "overlap");
}

Test(safetensors, refuses_bad_names)
{
    expect_refused(mutate("\"b\":{", "\"a\":{"), DN_EFORMAT, "duplicate tensor name 'a'");
    expect_refused(mutate("\"a\":{", "\"__metadata__\":{},\"a\":{"), DN_EFORMAT,
                   "two __metadata__");
    char to[DN_ST_MAX_NAME + 8];
    memset(to, 'n', sizeof to);
    to[0] = '"';
    strcpy(to + DN_ST_MAX_NAME + 1, "\":{");
    expect_refused(mutate("\"a\":{", to), DN_EFORMAT, "bytes long");
}

Test(safetensors, refuses_bad_metadata)
{
    expect_refused(mutate("{\"k\":\"v\"}", "\"kv\""), DN_EFORMAT, "__metadata__ is not an object");
    expect_refused(mutate("{\"k\":\"v\"}", "{\"k\":1}"), DN_EFORMAT, "'k' is not a string");
    expect_refused(mutate("{\"k\":\"v\"}", "{\"k\":\"v\",\"n\":null}"), DN_EFORMAT,
                   "'n' is not a string");
}

Test(safetensors, refuses_too_many_tensors)
{
    size_t cap = (DN_ST_MAX_TENSORS + 1) * 64 + 2;
    char *hdr = malloc(cap), *p = hdr;
    p += sprintf(p, "{");
    for (int i = 0; i <= DN_ST_MAX_TENSORS; i++)
        p += sprintf(p, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                     i ? "," : "", i);
    strcpy(p, "}");
    expect_refused(assemble(hdr, NULL, 0), DN_ETOOBIG, "4097 tensors");

    /* One fewer is fine: the limit is exact. */
    strcpy(strstr(hdr, ",\"t4096\""), "}");
    blob b = assemble(hdr, NULL, 0);
    dn_safetensors st;
    dn_st_init(&st);
    cr_assert_eq(dn_st_load_memory(&st, b.buf, b.len), DN_OK, "%s", st.err.msg);
    cr_assert_eq(st.n_tensors, DN_ST_MAX_TENSORS);
    dn_st_free(&st);
    free(b.buf);
    free(hdr);
}

Test(safetensors, load_refuses_missing_odd_and_huge_files)
{
    dn_safetensors st;
    dn_st_init(&st);
    cr_assert_eq(dn_st_load(&st, in_dir("missing")), DN_EIO);
    cr_assert_not_null(strstr(st.err.msg, "missing"), "%s", st.err.msg);
    cr_assert_eq(dn_st_load(&st, dir), DN_EIO);
    cr_assert_not_null(strstr(st.err.msg, "regular"), "%s", st.err.msg);

    /* A sparse file one byte over the limit is refused before anything is read. */
    const char *path = in_dir("huge");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, (off_t)DN_ST_MAX_FILE_BYTES + 1), 0);
    close(fd);
    cr_assert_eq(dn_st_load(&st, path), DN_ETOOBIG);
    cr_assert(st.err.msg[0] != '\0');
    cr_assert_null(st.buf);
    dn_st_free(&st);
}

/* ---- the writer's failures leave nothing behind ---- */

static void expect_save_fails(const char *path, int code)
{
    const int64_t shape[1] = {4};
    dn_st_writer w;
    dn_st_writer_init(&w);
    cr_assert_eq(dn_st_writer_add(&w, "b", 1, shape, B), DN_OK);
    int rc = dn_st_writer_save(&w, path);
    cr_assert_eq(rc, code, "want %s, got %s: '%s'", dn_error_name(code), dn_error_name(rc),
                 w.err.msg);
    cr_assert(w.err.msg[0] != '\0');
    dn_st_writer_free(&w);
}

Test(safetensors, save_into_unwritable_directory_leaves_nothing)
{
    expect_save_fails(in_dir("no/such/dir/m.safetensors"), DN_EIO);
    cr_assert_eq(dir_entries(dir), 0);
    if (geteuid() != 0) { /* root writes through permissions */
        cr_assert_eq(chmod(dir, 0500), 0);
        expect_save_fails(in_dir("m.safetensors"), DN_EIO);
        cr_assert_eq(chmod(dir, 0700), 0);
        cr_assert_eq(dir_entries(dir), 0);
    }
}

Test(safetensors, failed_rename_removes_temp_file)
{
    /* PATH is a non-empty directory: everything but the rename succeeds. */
    const char *path = in_dir("target");
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(write_file(in_dir("target/keep"), "x", 1), 0);
    expect_save_fails(path, DN_EIO);
    cr_assert_eq(dir_entries(dir), 1);
    cr_assert_eq(dir_entries(path), 1);
}

/* Both failures happen mid-write; the earlier file at PATH must survive intact. */
static void expect_old_file_kept(const char *path, const uint8_t *old, size_t old_len)
{
    size_t len;
    uint8_t *now = dn_test_read_file(path, &len);
    cr_assert_not_null(now);
    cr_assert_eq(len, old_len);
    cr_assert_eq(memcmp(now, old, len), 0);
    free(now);
    cr_assert_eq(dir_entries(dir), 2, "good.safetensors and the old file only");
}

Test(safetensors, disk_full_is_enospc_and_leaves_nothing)
{
    blob old = good_file();
    const char *path = in_dir("m.safetensors");
    cr_assert_eq(write_file(path, old.buf, old.len), 0);
    /* The temp name is PATH.tmp.<pid>: pointing it at /dev/full makes every write ENOSPC. */
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    cr_assert_eq(symlink("/dev/full", tmp), 0);
    expect_save_fails(path, DN_ENOSPC);
    expect_old_file_kept(path, old.buf, old.len);
    free(old.buf);
}

Test(safetensors, write_error_leaves_nothing)
{
    blob old = good_file();
    const char *path = in_dir("m.safetensors");
    cr_assert_eq(write_file(path, old.buf, old.len), 0);
    /* A file size limit below the new file's size: write() fails with EFBIG. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 16, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    expect_save_fails(path, DN_EIO);
    expect_old_file_kept(path, old.buf, old.len);
    free(old.buf);
}
