/* dn_request: each Content-Type path (raw image, multipart/form-data, JSON with base64),
 * batches and their cap, label and mask, data-URL prefixes, and the status and code of
 * every refusal. Bodies sit right before an inaccessible page, so that a read past the
 * end faults even inside cJSON, which ASan does not instrument. */
#include "test_util.h"

#include "dn_base64.h"
#include "dn_request.h"

#include <sys/mman.h>
#include <unistd.h>

typedef struct req {
    unsigned char *map;
    size_t map_size;
    const unsigned char *body;
    dn_api_input in;
    dn_api_fail fail;
    int rc;
} req;

/* Parses a copy of body[0..len) placed against a PROT_NONE page. */
static void run(req *r, const char *ct, const void *body, size_t len, int max_images)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    r->map_size = ((len + page - 1) / page + 1) * page;
    r->map = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(r->map, MAP_FAILED);
    cr_assert_eq(mprotect(r->map + r->map_size - page, page, PROT_NONE), 0);
    unsigned char *copy = r->map + r->map_size - page - len;
    memcpy(copy, body, len);
    r->body = copy;
    dn_api_input_init(&r->in);
    r->rc = dn_api_parse_input(ct, copy, len, max_images, &r->in, &r->fail);
    if (r->rc != 0) {
        cr_assert_eq(r->fail.status, r->rc);
        cr_assert(r->in.images == NULL && r->in.n_images == 0 && !r->in.batch && r->in.owned == NULL &&
                  r->in.n_owned == 0 && r->in.mask.len == 0 && r->in.label[0] == '\0',
                  "a failed parse must leave the input empty (%s)", r->fail.code);
    } else {
        cr_assert_eq(r->fail.status, 0);
    }
}

static void done(req *r)
{
    dn_api_input_free(&r->in);
    munmap(r->map, r->map_size);
}

static void run_str(req *r, const char *ct, const char *body, int max_images)
{
    run(r, ct, body, strlen(body), max_images);
}

static void expect_fail(const char *ct, const char *body, int max_images, int status,
                        const char *code, const char *in_message)
{
    req r;
    run_str(&r, ct, body, max_images);
    cr_assert_eq(r.rc, status, "%s | %.60s: got %d %s (%s)", ct ? ct : "(none)", body, r.rc,
                 r.fail.code, r.fail.message);
    cr_assert_str_eq(r.fail.code, code, "%.60s: %s", body, r.fail.message);
    if (in_message)
        cr_assert(strstr(r.fail.message, in_message), "\"%s\" not in \"%s\"", in_message,
                  r.fail.message);
    done(&r);
}

static void assert_blob(dn_api_blob b, const char *want)
{
    cr_assert_eq(b.len, strlen(want), "blob of %zu bytes, want \"%s\"", b.len, want);
    cr_assert_eq(memcmp(b.data, want, b.len), 0, "blob differs from \"%s\"", want);
}

/* ---- raw bodies and media types ---- */

Test(request, raw_image_bodies_are_one_image)
{
    const char *types[] = {"image/png", "image/jpeg", "IMAGE/JPEG; charset=binary", " image/png ; x=y"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        req r;
        run_str(&r, types[i], "\x89PNG not checked here", 0);
        cr_assert_eq(r.rc, 0, "%s: %s", types[i], r.fail.message);
        cr_assert_eq(r.in.n_images, 1);
        cr_assert_not(r.in.batch);
        cr_assert_eq(r.in.images[0].data, r.body, "the image is the body, not a copy");
        cr_assert_eq(r.in.images[0].len, strlen("\x89PNG not checked here"));
        cr_assert_eq(r.in.mask.len, 0u);
        cr_assert_str_eq(r.in.label, "");
        cr_assert_eq(r.in.n_owned, 0);
        done(&r);
    }
}

Test(request, empty_bodies_are_400)
{
    expect_fail("image/png", "", 0, 400, "empty_body", NULL);
    expect_fail("application/json", "", 0, 400, "empty_body", NULL);
    expect_fail("multipart/form-data; boundary=x", "", 0, 400, "empty_body", NULL);
}

Test(request, other_media_types_are_415_and_the_message_lists_the_accepted_ones)
{
    const char *types[] = {NULL, "", "text/plain", "image/gif", "application/x-www-form-urlencoded",
                           "multipart/mixed; boundary=x", "image/pngx", "image/png x", "application/jsonp",
                           "image"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        req r;
        run_str(&r, types[i], "{}", 0);
        cr_assert_eq(r.rc, 415, "%s", types[i] ? types[i] : "(none)");
        cr_assert_str_eq(r.fail.code, "unsupported_media_type");
        const char *accepted[] = {"image/jpeg", "image/png", "multipart/form-data", "application/json"};
        for (size_t k = 0; k < 4; k++)
            cr_assert(strstr(r.fail.message, accepted[k]), "%s", r.fail.message);
        done(&r);
    }
    expect_fail("text/plain; charset=utf-8", "x", 0, 415, "unsupported_media_type", "text/plain is not");
}

/* ---- multipart/form-data ---- */

#define MP_CT "multipart/form-data; boundary=\"XX\""
#define MP_FIELD(name, value) "--XX\r\nContent-Disposition: form-data; name=\"" name "\"\r\n\r\n" value "\r\n"
#define MP_FILE(name, value)                                                                         \
    "--XX\r\nContent-Disposition: form-data; name=\"" name "\"; filename=\"f.png\"\r\n"             \
    "Content-Type: image/png\r\n\r\n" value "\r\n"
#define MP_END "--XX--\r\n"

Test(request, multipart_batch_label_and_mask)
{
    const char *body = "preamble\r\n" MP_FILE("image", "one") MP_FIELD("note", "ignored")
        MP_FIELD("label", "anomaly") MP_FILE("image", "two\r\n--X") MP_FILE("mask", "MASK")
        MP_FILE("image", "three") MP_END "epilogue";
    req r;
    run_str(&r, MP_CT, body, 0);
    cr_assert_eq(r.rc, 0, "%s", r.fail.message);
    cr_assert_eq(r.in.n_images, 3);
    cr_assert(r.in.batch, "several image parts are a batch");
    assert_blob(r.in.images[0], "one");
    assert_blob(r.in.images[1], "two\r\n--X");
    assert_blob(r.in.images[2], "three");
    assert_blob(r.in.mask, "MASK");
    cr_assert_str_eq(r.in.label, "anomaly");
    cr_assert_eq(r.in.n_owned, 0, "multipart images point into the body");
    done(&r);
}

Test(request, multipart_refusals)
{
    expect_fail("multipart/form-data", MP_FILE("image", "x") MP_END, 0, 400, "invalid_multipart", "boundary");
    expect_fail(MP_CT, MP_FILE("image", "x"), 0, 400, "invalid_multipart", "closing delimiter");
    expect_fail(MP_CT, "no delimiter", 0, 400, "invalid_multipart", NULL);
    expect_fail(MP_CT, MP_FIELD("label", "normal") MP_END, 0, 400, "missing_image", NULL);
    expect_fail(MP_CT, MP_FILE("image", "a") MP_FILE("image", "") MP_END, 0, 400, "empty_image", "2");
    expect_fail(MP_CT, MP_FILE("image", "a") MP_FIELD("label", "normal") MP_FIELD("label", "anomaly") MP_END, 0,
                400, "invalid_multipart", "label");
    expect_fail(MP_CT, MP_FILE("image", "a") MP_FILE("mask", "m") MP_FILE("mask", "n") MP_END, 0, 400,
                "invalid_multipart", "mask");
    expect_fail(MP_CT, MP_FILE("image", "a") MP_FIELD("label", "0123456789abcdef") MP_END, 0, 400,
                "invalid_label", NULL);
}

Test(request, multipart_label_of_the_maximum_length_is_kept)
{
    req r;
    run_str(&r, MP_CT, MP_FILE("image", "a") MP_FIELD("label", "0123456789abcde") MP_END, 0);
    cr_assert_eq(r.rc, 0, "%s", r.fail.message);
    cr_assert_str_eq(r.in.label, "0123456789abcde");
    cr_assert_not(r.in.batch, "one image part is a single image");
    done(&r);
}

Test(request, multipart_every_truncation_is_refused_cleanly)
{
    const char *body = MP_FILE("image", "one") MP_FIELD("label", "normal") MP_FILE("mask", "M") MP_END;
    size_t len = strlen(body) - 2; /* the final CRLF is optional */
    for (size_t k = 0; k < len; k++) {
        req r;
        run(&r, MP_CT, body, k, 0);
        cr_assert_eq(r.rc, 400, "prefix %zu", k);
        cr_assert_str_eq(r.fail.code, k ? "invalid_multipart" : "empty_body", "prefix %zu", k);
        done(&r);
    }
}

/* ---- JSON ---- */

#define JSON_CT "application/json"

/* {"images": [b64(items[0]), ...]} plus extra, which starts with ',' or is "". */
static char *json_images(const char *const *items, int n, const char *extra)
{
    size_t cap = 64 + strlen(extra);
    for (int i = 0; i < n; i++)
        cap += dn_base64_encoded_len(strlen(items[i])) + 4; /* quotes, ", " */
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "{\"images\": [");
    for (int i = 0; i < n; i++) {
        *p++ = '"';
        dn_base64_encode((const unsigned char *)items[i], strlen(items[i]), p);
        p += strlen(p);
        p += sprintf(p, "\"%s", i + 1 < n ? ", " : "");
    }
    sprintf(p, "]%s}", extra);
    return s;
}

Test(request, json_single_image_with_and_without_a_data_url)
{
    const char *bodies[] = {"{\"image\": \"aGVsbG8=\"}", " {\"image\":\"data:image/png;base64,aGVsbG8=\"} \n",
                            "{\"image\":\"DATA:image/jpeg;BASE64,aGVs\\nbG8\"}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        req r;
        run_str(&r, "Application/JSON; charset=utf-8", bodies[i], 1);
        cr_assert_eq(r.rc, 0, "%s: %s", bodies[i], r.fail.message);
        cr_assert_eq(r.in.n_images, 1);
        cr_assert_not(r.in.batch);
        assert_blob(r.in.images[0], "hello");
        cr_assert_eq(r.in.n_owned, 1);
        done(&r);
    }
}

Test(request, json_batch_label_and_mask)
{
    const char *items[] = {"first image", "second", "3rd"};
    char *body = json_images(items, 3, ", \"label\": \"normal\", \"mask\": \"data:image/png;base64,TUFTSw==\"");
    req r;
    run_str(&r, JSON_CT, body, 0);
    cr_assert_eq(r.rc, 0, "%s", r.fail.message);
    cr_assert_eq(r.in.n_images, 3);
    cr_assert(r.in.batch);
    for (int i = 0; i < 3; i++)
        assert_blob(r.in.images[i], items[i]);
    assert_blob(r.in.mask, "MASK");
    cr_assert_str_eq(r.in.label, "normal");
    cr_assert_eq(r.in.n_owned, 4);
    done(&r);
    free(body);
}

Test(request, json_images_of_one_is_still_a_batch)
{
    const char *items[] = {"only"};
    char *body = json_images(items, 1, "");
    req r;
    run_str(&r, JSON_CT, body, 0);
    cr_assert_eq(r.rc, 0, "%s", r.fail.message);
    cr_assert_eq(r.in.n_images, 1);
    cr_assert(r.in.batch, "\"images\" asks for a list of answers, whatever its length");
    assert_blob(r.in.images[0], "only");
    done(&r);
    free(body);
}

Test(request, json_nulls_are_absent_fields)
{
    req r;
    run_str(&r, JSON_CT, "{\"image\": \"YQ==\", \"images\": null, \"label\": null, \"mask\": null}", 0);
    cr_assert_eq(r.rc, 0, "%s", r.fail.message);
    cr_assert_eq(r.in.n_images, 1);
    cr_assert_eq(r.in.mask.len, 0u);
    cr_assert_str_eq(r.in.label, "");
    done(&r);
}

Test(request, json_refusals)
{
    static const struct {
        const char *body, *code, *in_message;
    } cases[] = {
        {"{", "invalid_json", "byte"},
        {"{\"image\": \"YQ==\",}", "invalid_json", NULL},
        {"[\"YQ==\"]", "invalid_json", "object"},
        {"\"YQ==\"", "invalid_json", "object"},
        {"{\"image\": \"YQ==\"} {}", "invalid_json", "after"},
        {"{\"image\": \"YQ==\", \"images\": [\"YQ==\"]}", "invalid_json", "not both"},
        {"{}", "missing_image", NULL},
        {"{\"image\": null, \"label\": \"normal\"}", "missing_image", NULL},
        {"{\"Image\": \"YQ==\"}", "missing_image", NULL},
        {"{\"images\": []}", "missing_image", NULL},
        {"{\"images\": \"YQ==\"}", "invalid_json", "array"},
        {"{\"image\": 5}", "invalid_json", "image"},
        {"{\"images\": [\"YQ==\", 7]}", "invalid_json", "images[1]"},
        {"{\"images\": [\"YQ==\", \"YQ==\", \"Y!==\"]}", "invalid_base64", "images[2]"},
        {"{\"image\": \"YQ=\"}", "invalid_base64", "image"},
        {"{\"image\": \"data:image/png,YQ==\"}", "invalid_base64", "data URL"},
        {"{\"image\": \"data:image/png;base64\"}", "invalid_base64", "data URL"},
        {"{\"image\": \"\"}", "empty_image", "image"},
        {"{\"images\": [\"YQ==\", \"data:image/png;base64,\"]}", "empty_image", "images[1]"},
        {"{\"image\": \"YQ==\", \"label\": 1}", "invalid_json", "label"},
        {"{\"image\": \"YQ==\", \"label\": \"0123456789abcdef\"}", "invalid_label", NULL},
        {"{\"image\": \"YQ==\", \"mask\": \"%%%\"}", "invalid_base64", "mask"},
        {"{\"image\": \"YQ==\", \"mask\": [1]}", "invalid_json", "mask"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(JSON_CT, cases[i].body, 0, 400, cases[i].code, cases[i].in_message);
}

Test(request, json_every_truncation_is_refused_cleanly)
{
    const char *items[] = {"a", "bc"};
    char *body = json_images(items, 2, ", \"label\": \"anomaly\", \"mask\": \"TQ==\", \"n\": [1.5e3, true, {}]");
    for (size_t k = 1; k < strlen(body); k++) {
        req r;
        run(&r, JSON_CT, body, k, 0);
        cr_assert_eq(r.rc, 400, "prefix %zu", k);
        cr_assert_str_eq(r.fail.code, "invalid_json", "prefix %zu: %s", k, r.fail.message);
        done(&r);
    }
    free(body);
}

/* ---- batch cap ---- */

Test(request, batches_over_the_cap_are_413)
{
    expect_fail(MP_CT, MP_FILE("image", "a") MP_FILE("image", "b") MP_FILE("image", "c") MP_END, 2, 413,
                "batch_too_large", "3 images; the limit is 2");
    const char *items[DN_API_MAX_BATCH + 1];
    for (int i = 0; i <= DN_API_MAX_BATCH; i++)
        items[i] = "img";
    char *three = json_images(items, 3, "");
    expect_fail(JSON_CT, three, 2, 413, "batch_too_large", NULL);
    req r;
    run_str(&r, JSON_CT, three, 3);
    cr_assert_eq(r.rc, 0, "a batch of exactly max_images is fine");
    done(&r);
    free(three);

    char *full = json_images(items, DN_API_MAX_BATCH, ""), *over = json_images(items, DN_API_MAX_BATCH + 1, "");
    run_str(&r, JSON_CT, full, 0);
    cr_assert_eq(r.rc, 0, "max_images 0 means DN_API_MAX_BATCH: %s", r.fail.message);
    cr_assert_eq(r.in.n_images, DN_API_MAX_BATCH);
    done(&r);
    expect_fail(JSON_CT, over, 0, 413, "batch_too_large", NULL);
    expect_fail(JSON_CT, over, 1000, 413, "batch_too_large", "the limit is 64");
    free(full);
    free(over);
}

/* ---- the input handle and helpers ---- */

Test(request, input_is_reusable_and_emptied_by_a_failure)
{
    dn_api_input in;
    dn_api_fail fail;
    dn_api_input_init(&in);
    const unsigned char ok[] = "{\"image\": \"YQ==\", \"mask\": \"TQ==\", \"label\": \"normal\"}";
    cr_assert_eq(dn_api_parse_input(JSON_CT, ok, sizeof ok - 1, 0, &in, &fail), 0);
    cr_assert_eq(dn_api_parse_input(JSON_CT, ok, sizeof ok - 1, 0, &in, &fail), 0, "reparse frees first");
    cr_assert_eq(in.n_images, 1);
    const unsigned char bad[] = "{\"images\": [\"YQ==\", \"!\"]}";
    cr_assert_eq(dn_api_parse_input(JSON_CT, bad, sizeof bad - 1, 0, &in, NULL), 400, "fail may be NULL");
    cr_assert(in.n_images == 0 && in.n_owned == 0 && in.images == NULL && in.label[0] == '\0');
    dn_api_input_free(&in);
    dn_api_input_free(&in);
}

Test(request, label_parse)
{
    cr_assert_eq(dn_api_label_parse("anomaly"), 1);
    cr_assert_eq(dn_api_label_parse("normal"), 0);
    cr_assert_eq(dn_api_label_parse("Anomaly"), -1);
    cr_assert_eq(dn_api_label_parse("normal "), -1);
    cr_assert_eq(dn_api_label_parse(""), -1);
    cr_assert_eq(dn_api_label_parse(NULL), -1);
}

Test(request, fail_set_records_and_returns_the_status)
{
    dn_api_fail f;
    cr_assert_eq(dn_api_fail_set(&f, 413, "batch_too_large", "%d > %d", 9, 8), 413);
    cr_assert_eq(f.status, 413);
    cr_assert_str_eq(f.code, "batch_too_large");
    cr_assert_str_eq(f.message, "9 > 8");
    dn_api_fail_set(&f, 400, "a_code_much_longer_than_the_thirty_one_chars", "%s", "m");
    cr_assert_eq(strlen(f.code), sizeof f.code - 1, "truncated, still terminated");
    cr_assert_eq(dn_api_fail_set(NULL, 415, "x", "y"), 415);
}
