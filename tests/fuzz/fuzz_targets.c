/* The fuzz targets (see fuzz_targets.h). Compiled into every libFuzzer harness, and
 * included whole by tests/test_fuzz_replay.c, so both run exactly this code. */
#include "fuzz_targets.h"

#include "dn_api.h"
#include "dn_clock.h"
#include "dn_image.h"
#include "dn_log.h"
#include "dn_model.h"
#include "dn_multipart.h"
#include "dn_request.h"
#include "dn_safetensors.h"
#include "dn_service.h"
#include "dn_tflite.h"
#include "dn_train.h"

#include <cblas.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Small enough that decoding and resizing stay fast, so a header claiming a huge image is
 * refused on its size and the fuzzer spends its time on the parsers. */
#define FUZZ_MAX_PIXELS (1u << 16)
#define FUZZ_RESIZE 24

/* Reading every byte a parser hands out lets AddressSanitizer check the length it gave. */
static volatile unsigned fuzz_sink;

static void touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[i];
    fuzz_sink += s;
}

/* [p, p + n) lies inside [lo, lo + len). */
static int inside(const void *p, size_t n, const void *lo, size_t len)
{
    const unsigned char *a = p, *b = lo;
    return a >= b && n <= len && (size_t)(a - b) <= len - n;
}

/* ---- image -------------------------------------------------------------------------- */

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c >> 1 ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* libpng refuses a chunk whose CRC does not match, so nearly every mutation of a PNG would
 * stop there: recomputing them lets mutated headers and data reach the decoder. */
static void png_fix_crcs(uint8_t *p, size_t len)
{
    for (size_t at = 8; len - at >= 12;) {
        uint32_t n = be32(p + at);
        if (n > len - at - 12)
            return;
        uint32_t crc = crc32_png(p + at + 4, (size_t)n + 4);
        uint8_t *q = p + at + 8 + n;
        q[0] = (uint8_t)(crc >> 24), q[1] = (uint8_t)(crc >> 16), q[2] = (uint8_t)(crc >> 8), q[3] = (uint8_t)crc;
        at += 12 + (size_t)n;
    }
}

void dn_fuzz_image(const uint8_t *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, data, len);
    if (len >= 8 && !memcmp(copy, "\x89PNG\r\n\x1a\n", 8))
        png_fix_crcs(copy, len);
    dn_image img;
    dn_image_init(&img);
    dn_decode_opts o = {.max_pixels = FUZZ_MAX_PIXELS};
    dn_error err;
    if (dn_image_decode(&img, copy, len, &o, &err) == DN_OK) {
        if (img.width < 1 || img.height < 1 || (uint64_t)img.width * img.height > FUZZ_MAX_PIXELS)
            abort();
        touch(img.rgb, (size_t)img.width * img.height * 3);
        float out[FUZZ_RESIZE * FUZZ_RESIZE * 3];
        if (dn_image_to_input(&img, FUZZ_RESIZE, FUZZ_RESIZE, out, &err) != DN_OK)
            abort();
    } else if (img.rgb || err.code == DN_OK) {
        abort(); /* a failed decode leaves nothing behind and says why */
    }
    dn_image_free(&img);
    free(copy);
}

/* ---- model and safetensors --------------------------------------------------------- */

/* What the reader hands out stays inside the file, and names are unique. */
static void fuzz_safetensors(const uint8_t *data, size_t len)
{
    dn_safetensors st;
    dn_st_init(&st);
    if (dn_st_load_memory(&st, data, len) == DN_OK) {
        for (int i = 0; i < st.n_tensors; i++) {
            const dn_st_tensor *t = &st.tensors[i];
            if (dn_st_find(&st, t->name) != t || !inside(t->data, t->count * sizeof(float), st.buf, st.size))
                abort();
        }
        const char *fmt = dn_st_meta(&st, "format");
        touch(fmt, fmt ? strlen(fmt) : 0);
    }
    dn_st_free(&st);
}

/* dn_model_load reads a path: a memfd gives it the bytes without touching the disk. */
static int model_path(const uint8_t *data, size_t len, char *path, size_t cap)
{
    static int fd = -1;
    if (fd < 0)
        fd = memfd_create("dn_fuzz_model", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 0) != 0)
        return -1;
    for (size_t done = 0; done < len;) {
        ssize_t k = pwrite(fd, data + done, len - done, (off_t)done);
        if (k <= 0)
            return -1;
        done += (size_t)k;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return 0;
}

enum { FEAT_MAX_DIM = 4096 };

/* Scores features of the shapes m reads (final map 2x2, stride-8 4x4, stride-16 2x2) filled
 * with a fixed pattern, then describes the score and draws its heatmap. */
static void score_made_up(const dn_model *m)
{
    int head_c = m->has_head ? m->head.dim : 1, bank_c = m->has_bank ? m->bank.dim : 2;
    if (head_c < 1 || head_c > FEAT_MAX_DIM || bank_c < 2 || bank_c > FEAT_MAX_DIM)
        return;
    int c8 = bank_c / 2, c16 = bank_c - c8;
    size_t nf = 4 * (size_t)head_c, n8 = 16 * (size_t)c8, n = nf + n8 + 4 * (size_t)c16;
    float *buf = malloc(n * sizeof *buf);
    uint8_t grey[16 * 16 * 3];
    if (!buf)
        return;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(i * 7919u % 1000u) / 500.0f - 1.0f;
    memset(grey, 128, sizeof grey);
    dn_feats f;
    dn_feats_init(&f);
    f.final = (dn_fmap){2, 2, head_c, buf};
    f.s8 = (dn_fmap){4, 4, c8, buf + nf};
    f.s16 = (dn_fmap){2, 2, c16, buf + nf + n8};
    f.photo_w = f.photo_h = 16;
    dn_image img = {16, 16, grey};
    dn_score s;
    dn_error err;
    uint8_t *png = NULL;
    size_t png_len = 0;
    if (dn_model_score(m, &f, &s, &err) == DN_OK) {
        cJSON_Delete(dn_api_score_json(m, &s, 16, 16, 5));
        if (dn_api_heatmap_png(m, &img, &s, &png, &png_len, &err) == DN_OK)
            free(png);
        dn_score_free(&s);
    }
    free(buf);
}

void dn_fuzz_model(const uint8_t *data, size_t len)
{
    fuzz_safetensors(data, len);
    char path[64];
    if (model_path(data, len, path, sizeof path) != 0)
        return;
    dn_model m;
    dn_model_init(&m);
    if (dn_model_load(&m, path, NULL) == DN_OK) {
        cJSON_Delete(dn_api_model_json(&m));
        score_made_up(&m);
    } else if (m.err.code == DN_OK) {
        abort();
    }
    dn_model_free(&m);
}

/* ---- tflite ------------------------------------------------------------------------ */

/* A backbone file keeps the graph as JSON and validates it again when read: what the
 * importer accepts must read back node for node. */
static void check_graph_round_trip(const dn_graph *g)
{
    dn_graph *back = malloc(sizeof *back);
    cJSON *j = dn_graph_to_json(g);
    dn_error err;
    if (!back || !j)
        abort();
    if (dn_graph_from_json(back, j, &err) != DN_OK || back->n_nodes != g->n_nodes) {
        fprintf(stderr, "imported graph does not read back: %s\n", err.msg);
        abort();
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(back->nodes[i].name, g->nodes[i].name) || back->nodes[i].op != g->nodes[i].op ||
            back->nodes[i].cout != g->nodes[i].cout || back->nodes[i].in[0] != g->nodes[i].in[0] ||
            (g->nodes[i].op == DN_OP_ADD && back->nodes[i].in[1] != g->nodes[i].in[1]))
            abort();
    int *hw = malloc(2 * (size_t)g->n_nodes * sizeof *hw);
    if (hw)
        dn_graph_shapes(g, 32, 32, hw, hw + g->n_nodes, &err);
    free(hw);
    cJSON_Delete(j);
    free(back);
}

void dn_fuzz_tflite(const uint8_t *data, size_t len)
{
    dn_tflite_model m;
    dn_tflite_init(&m);
    if (dn_tflite_import(&m, data, len, NULL) == DN_OK)
        check_graph_round_trip(&m.graph);
    else if (m.err.code == DN_OK || m.weights)
        abort();
    dn_tflite_free(&m);
}

/* ---- request bodies ----------------------------------------------------------------- */

/* On success every image is non-empty and lies in the body or in a buffer the input owns;
 * on failure the input is empty and the status is the one returned. */
static void parse_checked(const char *ct, const uint8_t *body, size_t len, int max_images)
{
    dn_api_input in;
    dn_api_fail fail;
    dn_api_input_init(&in);
    int rc = dn_api_parse_input(ct, body, len, max_images, &in, &fail);
    if (rc) {
        if (rc != fail.status || !fail.code[0] || in.images || in.n_images || in.owned)
            abort();
        return;
    }
    if (in.n_images < 1 || in.n_images > max_images || strlen(in.label) > DN_API_MAX_LABEL)
        abort();
    for (int i = 0; i < in.n_images; i++) {
        dn_api_blob b = in.images[i];
        int owned = 0;
        for (int k = 0; k < in.n_owned; k++)
            owned |= b.data == in.owned[k];
        if (b.len == 0 || (!owned && !inside(b.data, b.len, body, len)))
            abort();
        touch(b.data, b.len);
    }
    touch(in.mask.data, in.mask.len);
    dn_api_input_free(&in);
}

void dn_fuzz_request_json(const uint8_t *data, size_t len)
{
    parse_checked("application/json", data, len, DN_API_MAX_BATCH);
    parse_checked("Application/JSON; charset=utf-8", data, len, 1);
}

static void check_span(dn_mp_span s, const uint8_t *body, size_t len)
{
    if (s.len && !inside(s.ptr, s.len, body, len))
        abort();
}

void dn_fuzz_multipart(const uint8_t *data, size_t len)
{
    const uint8_t *nl = memchr(data, '\n', len);
    size_t ct_len = nl ? (size_t)(nl - data) : len;
    char *ct = malloc(ct_len + 1);
    if (!ct)
        return;
    memcpy(ct, data, ct_len);
    ct[ct_len] = '\0';
    const uint8_t *body = nl ? nl + 1 : data + len;
    size_t blen = len - (size_t)(body - data);
    parse_checked(ct, body, blen, DN_API_MAX_BATCH);
    char boundary[DN_MULTIPART_MAX_BOUNDARY + 1];
    dn_error err;
    dn_multipart mp;
    dn_multipart_init(&mp);
    if (dn_multipart_boundary(ct, boundary, sizeof boundary, &err) == DN_OK) {
        int rc = dn_multipart_parse(&mp, body, blen, boundary, &err);
        if (rc != DN_OK && mp.n_parts)
            abort();
        for (int i = 0; i < mp.n_parts; i++) {
            const dn_mp_part *p = &mp.parts[i];
            check_span(p->name, body, blen);
            check_span(p->filename, body, blen);
            check_span(p->content_type, body, blen);
            if (p->len && !inside(p->data, p->len, body, blen))
                abort();
        }
    }
    dn_multipart_free(&mp);
    free(ct);
}

/* ---- service ------------------------------------------------------------------------- */

enum { TRAIN_SIZE = 64, TRAIN_SIDE = 40, N_NORMAL = 10, N_ANOMALY = 2 };

static struct {
    dn_service svc;
    int up;
    char dir[4096];
} fz;

/* A striped texture; an anomaly has a dark bar across it. */
static void texture(uint8_t *rgb, int anomaly, unsigned seed)
{
    for (int y = 0; y < TRAIN_SIDE; y++)
        for (int x = 0; x < TRAIN_SIDE; x++) {
            seed = seed * 1103515245u + 12345u;
            int v = 96 + ((x + y) / 4 % 2) * 64 + (int)(seed >> 27);
            if (anomaly && y >= 18 && y < 22)
                v = 10;
            memset(rgb + (y * TRAIN_SIDE + x) * 3, v, 3);
        }
}

static int feats_of(dn_extractor *x, int anomaly, unsigned seed, int aug, dn_feats *f)
{
    uint8_t rgb[TRAIN_SIDE * TRAIN_SIDE * 3];
    texture(rgb, anomaly, seed);
    dn_image img = {TRAIN_SIDE, TRAIN_SIDE, rgb};
    dn_feats_init(f);
    return dn_extractor_image(x, &img, aug, f);
}

/* Features of the training images: N_NORMAL normals, then N_ANOMALY anomalies in every
 * augmentation (dn_train_set's layout). */
static int train_feats(dn_extractor *x, dn_feats *f)
{
    int rc = DN_OK;
    for (int i = 0; i < N_NORMAL && !rc; i++)
        rc = feats_of(x, 0, (unsigned)i + 1, 0, &f[i]);
    for (int i = 0; i < N_ANOMALY * DN_AUGMENTATIONS && !rc; i++)
        rc = feats_of(x, 1, 100u + (unsigned)(i / DN_AUGMENTATIONS), i % DN_AUGMENTATIONS, &f[N_NORMAL + i]);
    return rc;
}

/* A fusion model at a small input size (fast to score), published as version 1: with one
 * version, a rollback refuses and changes nothing. */
static int train_and_publish(dn_service *s, dn_error *err)
{
    enum { N_FEATS = N_NORMAL + N_ANOMALY * DN_AUGMENTATIONS };
    const dn_feats *fp[N_FEATS];
    dn_feats *f = calloc(N_FEATS, sizeof *f);
    dn_extractor x;
    int rc = dn_extractor_init(&x, &s->bb, TRAIN_SIZE, NULL);
    if (!rc)
        rc = f ? train_feats(&x, f) : DN_ENOMEM;
    if (rc)
        dn_error_set(err, rc, "training features: %s", f ? x.err.msg : "out of memory");
    for (int i = 0; i < N_FEATS; i++)
        fp[i] = f ? &f[i] : NULL;
    dn_train_set set = {fp, N_NORMAL, fp + N_NORMAL, N_ANOMALY, DN_AUGMENTATIONS, "fuzz", NULL};
    dn_train_opts o;
    dn_train_opts_default(&o);
    o.size = TRAIN_SIZE;
    o.bank_max = 64;
    o.head.steps = 40;
    dn_model m;
    dn_model_init(&m);
    int version;
    if (!rc)
        rc = dn_train(&m, &set, &o, &s->bb, err);
    if (!rc)
        rc = dn_registry_publish(&s->reg, &m, &version, err);
    dn_model_free(&m);
    dn_feats_free_all(f, N_FEATS);
    dn_extractor_free(&x);
    return rc;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int remove_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    return flag == FTW_F ? remove(path) : 0;
}

/* Every feedback image would stay (a store never deletes): emptying it after each input
 * keeps it small and makes the next input's answer independent of this one. */
static void empty_store(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/feedback", fz.dir);
    nftw(path, remove_file, 8, FTW_PHYS);
}

int dn_fuzz_service_setup(void)
{
    const char *bb = getenv("DEVNET_BACKBONE"), *tmp = getenv("TMPDIR");
    dn_config cfg;
    dn_error err;
    dn_config_defaults(&cfg);
    snprintf(fz.dir, sizeof fz.dir, "%s/dn_fuzz_service_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fz.dir)) {
        perror(fz.dir);
        return -1;
    }
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", fz.dir);
    snprintf(cfg.backbone, sizeof cfg.backbone, "%s", bb && *bb ? bb : "build/backbone.safetensors");
    cfg.role = DN_ROLE_SCORER; /* no retraining thread: feedback is only stored */
    cfg.workers = 1;
    cfg.max_pixels = FUZZ_MAX_PIXELS;
    cfg.max_batch = 4;
    cfg.watch_interval_ms = 3600000;
    openblas_set_num_threads(1);
    dn_log_setup(NULL, DN_LOG_ERROR);
    fz.up = 1;
    int rc = dn_service_init(&fz.svc, &cfg, &err);
    if (!rc)
        rc = train_and_publish(&fz.svc, &err);
    if (rc) {
        fprintf(stderr, "fuzz service setup: %s\n", err.msg);
        dn_fuzz_service_teardown();
    }
    return rc ? -1 : 0;
}

void dn_fuzz_service_teardown(void)
{
    if (!fz.up)
        return;
    dn_service_free(&fz.svc);
    nftw(fz.dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    fz.up = 0;
}

/* Cuts the next '\n'-terminated line off *p (NUL-terminating it in place). */
static char *next_line(char **p)
{
    char *line = *p, *nl = strchr(line, '\n');
    *p = nl ? nl + 1 : line + strlen(line);
    if (nl)
        *nl = '\0';
    return line;
}

static void parse_query(char *q, dn_svc_request *rq)
{
    char *save = NULL;
    for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (!strcmp(kv, "heatmap"))
            rq->query_heatmap = eq + 1;
        else if (!strcmp(kv, "label"))
            rq->query_label = eq + 1;
    }
}

/* Every answer has a status and, when JSON, parses. */
static void check_response(const dn_svc_response *rs)
{
    if (rs->status < 200 || rs->status > 599 || (rs->len && !rs->body) || !rs->content_type)
        abort();
    if (!strcmp(rs->content_type, "application/json")) {
        cJSON *o = cJSON_ParseWithLength(rs->body, rs->len);
        if (!o)
            abort();
        cJSON_Delete(o);
    }
}

void dn_fuzz_service(const uint8_t *data, size_t len)
{
    /* The header lines are read from a NUL-terminated copy; the body stays in the input
     * buffer, whose exact length lets AddressSanitizer see any read past it. */
    size_t head = 0;
    for (int lines = 0; head < len && lines < 4; head++)
        lines += data[head] == '\n';
    char *copy = malloc(head + 1), *p = copy;
    if (!copy)
        return;
    memcpy(copy, data, head);
    copy[head] = '\0';
    dn_svc_request rq = {0};
    rq.method = next_line(&p);
    rq.path = next_line(&p);
    char *ct = next_line(&p);
    rq.content_type = *ct ? ct : NULL;
    parse_query(next_line(&p), &rq);
    rq.body = data + head;
    rq.len = len - head;
    rq.arrived = dn_clock_now();
    dn_service_request_id(&fz.svc, NULL, &rq);
    dn_svc_response rs = {0};
    dn_route route;
    if (dn_service_route(&fz.svc, &rq, &route, &rs) == 0)
        dn_service_handle(&fz.svc, route, &rq, dn_route_heavy(route) ? 0 : -1, &rs);
    check_response(&rs);
    if (route == DN_ROUTE_FEEDBACK)
        empty_store();
    dn_svc_response_free(&rs);
    free(copy);
}
