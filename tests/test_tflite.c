/* The TFLite importer on the real MobileNetV2 file (structure, hash, round trip through
 * the backbone safetensors file) and its refusal of broken files; graph JSON checks. */
#include "test_util.h"

#include "dn_backbone.h"
#include "dn_tflite.h"

#include <unistd.h>

#define MODEL_SHA "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c"

static uint8_t *read_model(const char *shared, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/models/tf2_mobilenet_v2_1.0_224_ptq.tflite", shared);
    uint8_t *buf = dn_test_read_file(path, len);
    cr_assert_not_null(buf, "cannot read %s", path);
    return buf;
}

Test(tflite, imports_mobilenet_v2)
{
    DN_REQUIRE_SHARED(shared);
    size_t len;
    uint8_t *buf = read_model(shared, &len);
    dn_tflite_model m;
    dn_tflite_init(&m);
    cr_assert_eq(dn_tflite_import(&m, buf, len, NULL), DN_OK, "%s", m.err.msg);
    const dn_graph *g = &m.graph;
    cr_assert_str_eq(m.source_sha256, MODEL_SHA);
    /* 36 CONV_2D + 17 DEPTHWISE + 10 ADD + MEAN + SOFTMAX; QUANTIZE and RESHAPE dropped */
    cr_assert_eq(g->n_nodes, 65);
    int counts[DN_OP_COUNT] = {0};
    for (int i = 0; i < g->n_nodes; i++)
        counts[g->nodes[i].op]++;
    cr_assert_eq(counts[DN_OP_CONV], 36);
    cr_assert_eq(counts[DN_OP_DWCONV], 17);
    cr_assert_eq(counts[DN_OP_ADD], 10);
    cr_assert_eq(counts[DN_OP_MEAN], 1);
    cr_assert_eq(counts[DN_OP_SOFTMAX], 1);
    const dn_node *stem = &g->nodes[0];
    cr_assert_eq(stem->op, DN_OP_CONV);
    cr_assert_eq(stem->kh, 3);
    cr_assert_eq(stem->stride_h, 2);
    cr_assert_eq(stem->pad, DN_PAD_SAME);
    cr_assert_eq(stem->act, DN_ACT_RELU6);
    cr_assert_eq(stem->cout, 32);
    cr_assert_eq(g->n_classes, 1001);
    cr_assert_eq(g->native_size, 224);
    cr_assert_float_eq(g->in_scale, 1 / 127.5, 1e-9);
    cr_assert_float_eq(g->in_offset, -1.0, 1e-9);
    /* 3.5M parameters: MobileNetV2 1.0 has 3.50M with BN folded into biases */
    cr_assert(m.n_weights > 3400000 && m.n_weights < 3600000, "%zu weights", m.n_weights);
    dn_tflite_free(&m);
    free(buf);
}

/* Imports the shared MobileNetV2 into m and saves it as dir (a mkdtemp template, made
 * here)/bb.safetensors into path (64 bytes); the file's bytes, for the caller to free. */
static uint8_t *import_and_save(const char *shared, dn_tflite_model *m, char *dir, char *path)
{
    size_t len;
    uint8_t *buf = read_model(shared, &len);
    dn_tflite_init(m);
    cr_assert_eq(dn_tflite_import(m, buf, len, NULL), DN_OK);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, 64, "%s/bb.safetensors", dir);
    dn_error err;
    cr_assert_eq(dn_backbone_save(&m->graph, m->source_sha256, path, &err), DN_OK, "%s", err.msg);
    return buf;
}

Test(tflite, backbone_file_round_trip_is_exact)
{
    DN_REQUIRE_SHARED(shared);
    dn_tflite_model m;
    char dir[] = "/tmp/dn_tflite_XXXXXX", path[64];
    uint8_t *buf = import_and_save(shared, &m, dir, path);
    dn_backbone bb;
    dn_backbone_init(&bb);
    cr_assert_eq(dn_backbone_load(&bb, path), DN_OK, "%s", bb.err.msg);
    cr_assert_str_eq(bb.source_sha256, MODEL_SHA);
    cr_assert_eq(strlen(bb.sha256), 64);
    cr_assert_eq(bb.graph.n_nodes, m.graph.n_nodes);
    for (int i = 0; i < m.graph.n_nodes; i++) {
        const dn_node *a = &m.graph.nodes[i], *b = &bb.graph.nodes[i];
        cr_assert_str_eq(a->name, b->name);
        cr_assert(a->op == b->op && a->in[0] == b->in[0] && a->kh == b->kh &&
                      a->stride_w == b->stride_w && a->act == b->act && a->cout == b->cout,
                  "node %s changed", a->name);
        size_t wn = dn_node_weight_count(a), bn = dn_node_bias_count(a);
        cr_assert(wn == 0 || memcmp(a->weight, b->weight, wn * 4) == 0, "%s weights", a->name);
        cr_assert(bn == 0 || memcmp(a->bias, b->bias, bn * 4) == 0, "%s bias", a->name);
    }
    dn_backbone_free(&bb);
    unlink(path);
    char side[72];
    snprintf(side, sizeof side, "%s.sha256", path);
    unlink(side);
    rmdir(dir);
    dn_tflite_free(&m);
    free(buf);
}

/* dn_backbone_save writes PATH.sha256; a file that no longer matches it is refused. */
Test(tflite, backbone_file_is_checked_against_its_sha256_file)
{
    DN_REQUIRE_SHARED(shared);
    dn_tflite_model m;
    char dir[] = "/tmp/dn_tflite_XXXXXX", path[64], side[72];
    uint8_t *buf = import_and_save(shared, &m, dir, path);
    snprintf(side, sizeof side, "%s.sha256", path);
    size_t slen;
    char *text = (char *)dn_test_read_file(side, &slen);
    cr_assert_not_null(text, "no %s", side);
    dn_backbone bb;
    dn_backbone_init(&bb);
    cr_assert_eq(dn_backbone_load(&bb, path), DN_OK, "%s", bb.err.msg);
    cr_assert(slen == 64 + 2 + strlen("bb.safetensors") + 1 && !strncmp(text, bb.sha256, 64) &&
                  !strncmp(text + 64, "  bb.safetensors\n", 17),
              "sidecar: %.*s", (int)slen, text);
    dn_backbone_free(&bb);

    /* one flipped bit in the last weight: still a well-formed file, but not the one saved */
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, -1, SEEK_END), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, -1, SEEK_END), 0);
    fputc(c ^ 1, f);
    cr_assert_eq(fclose(f), 0);
    dn_backbone_init(&bb);
    cr_assert_eq(dn_backbone_load(&bb, path), DN_EMISMATCH, "a damaged backbone loaded");
    cr_assert(strstr(bb.err.msg, "bb.safetensors.sha256") && strstr(bb.err.msg, "damaged"), "%s", bb.err.msg);
    dn_backbone_free(&bb);

    /* a sidecar that is not a hash is refused too; without one, nothing is checked */
    f = fopen(side, "w");
    fputs("not a hash\n", f);
    fclose(f);
    dn_backbone_init(&bb);
    cr_assert_eq(dn_backbone_load(&bb, path), DN_EFORMAT);
    dn_backbone_free(&bb);
    unlink(side);
    dn_backbone_init(&bb);
    cr_assert_eq(dn_backbone_load(&bb, path), DN_OK, "%s", bb.err.msg);
    dn_backbone_free(&bb);
    unlink(path);
    rmdir(dir);
    free(text);
    dn_tflite_free(&m);
    free(buf);
}

Test(tflite, refuses_non_tflite_and_truncated_files)
{
    dn_tflite_model m;
    dn_tflite_init(&m);
    const uint8_t junk[] = "this is not a flatbuffer at all";
    cr_assert_eq(dn_tflite_import(&m, junk, sizeof junk, NULL), DN_EFORMAT);
    cr_assert(strstr(m.err.msg, "TFL3") != NULL, "message: %s", m.err.msg);
    cr_assert_eq(dn_tflite_import(&m, junk, 0, NULL), DN_EFORMAT);
    DN_REQUIRE_SHARED(shared);
    size_t len;
    uint8_t *buf = read_model(shared, &len);
    /* Prefixes on a coarse grid: an error with a message, never a crash. The file ends
     * with a ZIP of label files appended after the flatbuffer (TFLite metadata), which
     * the model does not need: cuts inside that tail may load, but must not crash. */
    size_t tail = 65536;
    for (size_t cut = 8; cut < len; cut += cut < 65536 || cut > len - tail ? 997 : 99991) {
        uint8_t *part = malloc(cut);
        memcpy(part, buf, cut);
        int rc = dn_tflite_import(&m, part, cut, NULL);
        if (cut < len - tail) {
            cr_assert_neq(rc, DN_OK, "a file cut at %zu bytes was accepted", cut);
            cr_assert(m.err.msg[0] != '\0', "no message for a cut at %zu", cut);
        }
        dn_tflite_free(&m);
        free(part);
    }
    free(buf);
}

Test(tflite, corrupted_bytes_never_crash)
{
    DN_REQUIRE_SHARED(shared);
    size_t len;
    uint8_t *buf = read_model(shared, &len);
    cr_assert_gt(len, 8192, "the backbone file under %s has %zu bytes: not the model", shared, len);
    uint64_t seed = 99;
    dn_tflite_model m;
    dn_tflite_init(&m);
    int refused = 0;
    for (int round = 0; round < 60; round++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        /* table offsets live in the first and last kilobytes; weights in between */
        for (int k = 0; k < 8; k++) {
            size_t at = dn_test_rand(&seed) % 4096;
            at = (k % 2) ? len - 1 - at : at;
            copy[at] ^= (uint8_t)(1 + dn_test_rand(&seed) % 255);
        }
        refused += dn_tflite_import(&m, copy, len, NULL) != DN_OK;
        dn_tflite_free(&m);
        free(copy);
    }
    cr_assert_gt(refused, 0, "60 corrupted copies were all accepted");
    free(buf);
}

Test(tflite, graph_json_validation)
{
    const char *bad[] = {
        "{}",
        "{\"input\":{\"channels\":3,\"native_size\":8,\"scale\":1,\"offset\":0},\"classes\":0,"
        "\"nodes\":[{\"name\":\"a\",\"op\":\"conv\",\"inputs\":[\"b\"],\"cin\":3,\"cout\":4,"
        "\"kernel\":[1,1],\"stride\":[1,1],\"padding\":\"same\",\"activation\":\"none\"}]}",
        "{\"input\":{\"channels\":3,\"native_size\":8,\"scale\":1,\"offset\":0},\"classes\":0,"
        "\"nodes\":[{\"name\":\"a\",\"op\":\"conv\",\"inputs\":[\"input\"],\"cin\":5,\"cout\":4,"
        "\"kernel\":[1,1],\"stride\":[1,1],\"padding\":\"same\",\"activation\":\"none\"}]}",
        "{\"input\":{\"channels\":3,\"native_size\":8,\"scale\":1,\"offset\":0},\"classes\":0,"
        "\"nodes\":[{\"name\":\"a\",\"op\":\"gelu\",\"inputs\":[\"input\"],\"cin\":3,\"cout\":3,"
        "\"activation\":\"none\"}]}",
    };
    const char *good =
        "{\"input\":{\"channels\":3,\"native_size\":8,\"scale\":1,\"offset\":0},\"classes\":0,"
        "\"nodes\":[{\"name\":\"a\",\"op\":\"conv\",\"inputs\":[\"input\"],\"cin\":3,\"cout\":4,"
        "\"kernel\":[3,3],\"stride\":[2,2],\"padding\":\"same\",\"activation\":\"relu6\"},"
        "{\"name\":\"b\",\"op\":\"add\",\"inputs\":[\"a\",\"a\"],\"cin\":4,\"cout\":4,"
        "\"activation\":\"none\"}]}";
    dn_graph g;
    dn_error err;
    for (int i = 0; i < 4; i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        cr_assert_neq(dn_graph_from_json(&g, j, &err), DN_OK, "bad graph %d accepted", i);
        cr_assert(err.msg[0], "no message for bad graph %d", i);
        cJSON_Delete(j);
    }
    cJSON *j = cJSON_Parse(good);
    cr_assert_eq(dn_graph_from_json(&g, j, &err), DN_OK, "%s", err.msg);
    cJSON_Delete(j);
    cr_assert_eq(g.n_nodes, 2);
    cr_assert_eq(g.nodes[1].in[1], 0);
    cJSON *back = dn_graph_to_json(&g);
    dn_graph g2;
    cr_assert_eq(dn_graph_from_json(&g2, back, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(g2.nodes[0].stride_h, 2);
    cr_assert_eq(g2.nodes[0].act, DN_ACT_RELU6);
    cJSON_Delete(back);
}
