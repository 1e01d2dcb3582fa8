/* dn_multipart: boundaries from Content-Type values, well-formed bodies (one and several
 * parts, preamble, padding, epilogue, binary payloads with near-delimiters), and hostile
 * ones (every truncation, no close delimiter, too many parts, long headers). Bodies are
 * parsed from exactly sized heap copies so that ASan sees any read past the end. */
#include "test_util.h"

#include "dn_multipart.h"

/* A growable byte buffer for building bodies. */
typedef struct body {
    unsigned char *p;
    size_t n, cap;
} body;

static void put(body *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void puts_(body *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Parses body[0..n) from an exact-size copy; the parts then point into *copy. */
static int parse_copy(dn_multipart *mp, const unsigned char *src, size_t n, const char *boundary,
                      unsigned char **copy, dn_error *err)
{
    *copy = malloc(n ? n : 1);
    memcpy(*copy, src, n);
    return dn_multipart_parse(mp, *copy, n, boundary, err);
}

static void assert_span(dn_mp_span s, const char *want)
{
    cr_assert_eq(s.len, strlen(want), "span \"%.*s\" != \"%s\"", (int)s.len, s.ptr, want);
    cr_assert_eq(memcmp(s.ptr, want, s.len), 0, "span \"%.*s\" != \"%s\"", (int)s.len, s.ptr, want);
}

static void assert_data(const dn_mp_part *p, const void *want, size_t n)
{
    cr_assert_eq(p->len, n, "payload %zu bytes, want %zu", p->len, n);
    cr_assert_eq(memcmp(p->data, want, n), 0, "payload differs");
}

static const char SIMPLE[] = "--XyZ\r\n"
                             "Content-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                             "Content-Type: image/png\r\n"
                             "\r\n"
                             "PNGDATA\r\n"
                             "--XyZ--";

Test(multipart, boundary_from_content_type)
{
    char b[DN_MULTIPART_MAX_BOUNDARY + 1];
    dn_error err;
    cr_assert_eq(dn_multipart_boundary("multipart/form-data; boundary=abc123", b, sizeof b, &err), DN_OK);
    cr_assert_str_eq(b, "abc123");
    cr_assert_eq(dn_multipart_boundary("multipart/form-data;charset=utf-8;BOUNDARY = \"a b;c\\\"d\" ; x=y",
                                       b, sizeof b, &err), DN_OK, "%s", err.msg);
    cr_assert_str_eq(b, "a b;c\"d", "quoted, with ';' and an escaped quote inside");
    cr_assert_eq(dn_multipart_boundary("multipart/form-data; name=\"boundary=no\"; boundary=yes",
                                       b, sizeof b, &err), DN_OK);
    cr_assert_str_eq(b, "yes", "a quoted value is not a parameter");
}

Test(multipart, boundary_refusals)
{
    char b[DN_MULTIPART_MAX_BOUNDARY + 1], ct[200];
    dn_error err;
    cr_assert_eq(dn_multipart_boundary("multipart/form-data", b, sizeof b, &err), DN_EFORMAT);
    cr_assert(strstr(err.msg, "boundary"), "%s", err.msg);
    cr_assert_eq(dn_multipart_boundary(NULL, b, sizeof b, &err), DN_EFORMAT);
    cr_assert_eq(dn_multipart_boundary("multipart/form-data; boundary=", b, sizeof b, &err), DN_EFORMAT);
    cr_assert_eq(dn_multipart_boundary("multipart/form-data; boundary=\"\"", b, sizeof b, &err), DN_EFORMAT);
    cr_assert_eq(dn_multipart_boundary("multipart/form-data; boundary=\"abc", b, sizeof b, &err), DN_EFORMAT);
    cr_assert_eq(dn_multipart_boundary("multipart/form-data; boundary=\"a\tb\"", b, sizeof b, &err), DN_EFORMAT);
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%0*d", DN_MULTIPART_MAX_BOUNDARY, 7);
    cr_assert_eq(dn_multipart_boundary(ct, b, sizeof b, &err), DN_OK, "70 characters is the RFC's limit");
    cr_assert_eq(strlen(b), (size_t)DN_MULTIPART_MAX_BOUNDARY);
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%0*d", DN_MULTIPART_MAX_BOUNDARY + 1, 7);
    cr_assert_eq(dn_multipart_boundary(ct, b, sizeof b, &err), DN_EFORMAT);
    cr_assert_eq(dn_multipart_boundary("multipart/form-data; boundary=abcdef", b, 4, &err), DN_EINVAL);
}

Test(multipart, single_part)
{
    dn_multipart mp;
    dn_multipart_init(&mp);
    dn_error err;
    unsigned char *copy;
    cr_assert_eq(parse_copy(&mp, (const unsigned char *)SIMPLE, strlen(SIMPLE), "XyZ", &copy, &err), DN_OK,
                 "%s", err.msg);
    cr_assert_eq(mp.n_parts, 1);
    assert_span(mp.parts[0].name, "image");
    assert_span(mp.parts[0].filename, "a.png");
    assert_span(mp.parts[0].content_type, "image/png");
    assert_data(&mp.parts[0], "PNGDATA", 7);
    cr_assert(mp.parts[0].data >= copy && mp.parts[0].data < copy + strlen(SIMPLE), "no copy");
    dn_multipart_free(&mp);
    free(copy);
}

Test(multipart, several_parts_with_preamble_padding_and_epilogue)
{
    const char *text = "This is the preamble; --b is not a delimiter here.\r\n"
                       "--b \t\r\n"
                       "content-disposition: form-data; name=image; filename=\"one.jpg\"\r\n"
                       "\r\n"
                       "first\r\n"
                       "--b\r\n"
                       "Content-Disposition: form-data;\r\n\tname=\"label\"\r\n"
                       "\r\n"
                       "anomaly\r\n"
                       "--b\r\n"
                       "Content-Type:   text/plain  \r\n"
                       "X-Other: 1\r\n"
                       "\r\n"
                       "\r\n"
                       "--b\r\n"
                       "\r\n"
                       "no headers\r\n"
                       "--b--  \r\n"
                       "epilogue\r\n--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nignored";
    dn_multipart mp;
    dn_multipart_init(&mp);
    dn_error err;
    unsigned char *copy;
    cr_assert_eq(parse_copy(&mp, (const unsigned char *)text, strlen(text), "b", &copy, &err), DN_OK, "%s",
                 err.msg);
    cr_assert_eq(mp.n_parts, 4, "the epilogue holds no parts");
    assert_span(mp.parts[0].name, "image");
    assert_span(mp.parts[0].filename, "one.jpg");
    cr_assert_eq(mp.parts[0].content_type.len, 0u);
    assert_data(&mp.parts[0], "first", 5);
    assert_span(mp.parts[1].name, "label");
    assert_data(&mp.parts[1], "anomaly", 7);
    cr_assert_eq(mp.parts[2].name.len, 0u, "a part without Content-Disposition has no name");
    assert_span(mp.parts[2].content_type, "text/plain");
    assert_data(&mp.parts[2], "", 0);
    assert_data(&mp.parts[3], "no headers", 10);
    dn_multipart_free(&mp);
    free(copy);
}

/* Payload bytes that look like line ends, dashes, NULs and the delimiter's beginnings. */
static const unsigned char TRICKY[] = "\r\n\r\n--\r\n--bound\r\n--boundar\r\n-boundary\n--boundary\r"
                                      "\n--boundaryX\r\n--boundary-x\r--boundary\r\n\0\0\xff--";

static void build_binary(body *b)
{
    puts_(b, "--boundary\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.bin\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n");
    put(b, TRICKY, sizeof TRICKY);
    puts_(b, "\r\n--boundary\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n");
    put(b, TRICKY, sizeof TRICKY - 1);
    puts_(b, "\r\n--boundary--");
}

Test(multipart, binary_payloads_with_near_delimiters_survive_intact)
{
    body b = {0};
    build_binary(&b);
    dn_multipart mp;
    dn_multipart_init(&mp);
    dn_error err;
    unsigned char *copy;
    cr_assert_eq(parse_copy(&mp, b.p, b.n, "boundary", &copy, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(mp.n_parts, 2);
    assert_data(&mp.parts[0], TRICKY, sizeof TRICKY);
    assert_data(&mp.parts[1], TRICKY, sizeof TRICKY - 1);
    dn_multipart_free(&mp);
    free(copy);
    free(b.p);
}

Test(multipart, every_truncation_fails_cleanly)
{
    body b = {0};
    build_binary(&b);
    dn_multipart mp;
    dn_multipart_init(&mp);
    for (size_t k = 0; k < b.n; k++) {
        dn_error err = {0};
        unsigned char *copy;
        int rc = parse_copy(&mp, b.p, k, "boundary", &copy, &err);
        cr_assert_eq(rc, DN_EFORMAT, "prefix of %zu bytes: rc %d", k, rc);
        cr_assert_eq(mp.n_parts, 0, "prefix of %zu bytes left parts", k);
        cr_assert_neq(err.msg[0], '\0');
        free(copy);
    }
    dn_multipart_free(&mp);
    free(b.p);
}

Test(multipart, refuses_a_body_without_its_close_delimiter)
{
    const char *cases[] = {
        "--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\ndata\r\n--b\r\n",
        "--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\ndata",
        "no delimiter at all",
        "--b-\r\n",
        "--bb\r\n\r\nx\r\n--bb--",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dn_multipart mp;
        dn_multipart_init(&mp);
        dn_error err;
        unsigned char *copy;
        cr_assert_eq(parse_copy(&mp, (const unsigned char *)cases[i], strlen(cases[i]), "b", &copy, &err),
                     DN_EFORMAT, "case %zu", i);
        cr_assert(strstr(err.msg, "delimiter"), "case %zu: %s", i, err.msg);
        dn_multipart_free(&mp);
        free(copy);
    }
}

Test(multipart, refuses_malformed_delimiters_and_headers)
{
    const char *cases[] = {
        "--b  junk\r\n\r\nx\r\n--b--",                  /* padding then text */
        "--b\n\r\nx\r\n--b--",                           /* bare LF */
        "--b\r\nno colon here\r\n\r\nx\r\n--b--",        /* header line */
        "--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nx\r\n--b--", /* quote */
        "--b\r\nContent-Type: text/plain\r\nx\r\n--b--", /* no empty line */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dn_multipart mp;
        dn_multipart_init(&mp);
        dn_error err;
        unsigned char *copy;
        cr_assert_eq(parse_copy(&mp, (const unsigned char *)cases[i], strlen(cases[i]), "b", &copy, &err),
                     DN_EFORMAT, "case %zu", i);
        cr_assert_eq(mp.n_parts, 0);
        dn_multipart_free(&mp);
        free(copy);
    }
}

static void build_parts(body *b, int n)
{
    for (int i = 0; i < n; i++)
        puts_(b, "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n");
    puts_(b, "--b--");
}

Test(multipart, caps_the_number_of_parts)
{
    body ok = {0}, over = {0};
    build_parts(&ok, DN_MULTIPART_MAX_PARTS);
    build_parts(&over, DN_MULTIPART_MAX_PARTS + 1);
    dn_multipart mp;
    dn_multipart_init(&mp);
    dn_error err;
    cr_assert_eq(dn_multipart_parse(&mp, ok.p, ok.n, "b", &err), DN_OK, "%s", err.msg);
    cr_assert_eq(mp.n_parts, DN_MULTIPART_MAX_PARTS);
    cr_assert_eq(dn_multipart_parse(&mp, over.p, over.n, "b", &err), DN_ETOOBIG);
    cr_assert_eq(mp.n_parts, 0);
    dn_multipart_free(&mp);
    free(ok.p);
    free(over.p);
}

Test(multipart, caps_the_part_header_block)
{
    for (int over = 0; over <= 1; over++) {
        body b = {0};
        puts_(&b, "--b\r\nContent-Disposition: form-data; name=\"image\"\r\nX-Pad: ");
        while (b.n - 5 < DN_MULTIPART_MAX_PART_HEADER + (size_t)over) /* after "--b\r\n" */
            puts_(&b, "a");
        size_t header_len = b.n - 5;
        puts_(&b, "\r\n\r\ndata\r\n--b--");
        dn_multipart mp;
        dn_multipart_init(&mp);
        dn_error err;
        int rc = dn_multipart_parse(&mp, b.p, b.n, "b", &err);
        if (header_len <= DN_MULTIPART_MAX_PART_HEADER) {
            cr_assert_eq(rc, DN_OK, "%zu header bytes: %s", header_len, err.msg);
            assert_data(&mp.parts[0], "data", 4);
        } else {
            cr_assert_eq(rc, DN_ETOOBIG, "%zu header bytes", header_len);
        }
        dn_multipart_free(&mp);
        free(b.p);
    }
}

/* A quadratic delimiter search would take minutes on this body. */
Test(multipart, near_delimiters_are_scanned_in_linear_time, .timeout = 10)
{
    body b = {0};
    puts_(&b, "--boundary\r\n\r\n");
    for (int i = 0; i < 200000; i++)
        puts_(&b, "\r\n--boundaryX\r\n--boundar");
    puts_(&b, "\r\n--boundary--");
    dn_multipart mp;
    dn_multipart_init(&mp);
    dn_error err;
    cr_assert_eq(dn_multipart_parse(&mp, b.p, b.n, "boundary", &err), DN_OK, "%s", err.msg);
    cr_assert_eq(mp.n_parts, 1);
    cr_assert_eq(mp.parts[0].len, b.n - strlen("--boundary\r\n\r\n") - strlen("\r\n--boundary--"));
    dn_multipart_free(&mp);
    free(b.p);
}

Test(multipart, span_comparison_is_exact)
{
    const char *s = "images";
    cr_assert(dn_mp_span_is((dn_mp_span){s, 5}, "image"));
    cr_assert_not(dn_mp_span_is((dn_mp_span){s, 6}, "image"));
    cr_assert_not(dn_mp_span_is((dn_mp_span){s, 4}, "image"));
    cr_assert_not(dn_mp_span_is((dn_mp_span){"IMAGE", 5}, "image"), "field names are case-sensitive");
}
