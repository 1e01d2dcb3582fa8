/* The trainable tail: with the backbone's own weights it reproduces the backbone's final
 * map from the cached tail input; its parameters round-trip through a flat block. (Its
 * gradients are checked in test_grad.c, its training end to end in test_train.c.) */
#include "test_util.h"

#include "dn_features.h"
#include "dn_tail.h"

#include <cblas.h>
#include <math.h>

Test(tail, copy_reproduces_the_backbone_final_map)
{
    DN_REQUIRE_BACKBONE(path);
    openblas_set_num_threads(1);
    dn_backbone bb;
    dn_backbone_init(&bb);
    cr_assert_eq(dn_backbone_load(&bb, path), DN_OK, "%s", bb.err.msg);
    dn_extractor x;
    cr_assert_eq(dn_extractor_init(&x, &bb, 96, NULL), DN_OK, "%s", x.err.msg);
    dn_image img = {.width = 50, .height = 40, .rgb = malloc(50 * 40 * 3)};
    uint64_t seed = 4;
    for (int i = 0; i < 50 * 40 * 3; i++)
        img.rgb[i] = (uint8_t)(dn_test_rand(&seed) & 0xff);
    dn_feats f;
    dn_feats_init(&f);
    cr_assert_eq(dn_extractor_image(&x, &img, 0, &f), DN_OK, "%s", x.err.msg);
    cr_assert_eq(f.tail_in.c, 160);
    dn_tail t;
    dn_error err;
    cr_assert_eq(dn_tail_init(&t, &bb, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(t.layer[3].cout, 1280);
    float *acts = malloc(dn_tail_act_floats(&t, f.tail_in.h, f.tail_in.w) * sizeof(float));
    const float *out = dn_tail_forward(&t, f.tail_in.data, f.tail_in.h, f.tail_in.w, acts);
    size_t n = (size_t)f.final.h * f.final.w * f.final.c;
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(out[i] - f.final.data[i]) <= 1e-4f * (1 + fabsf(f.final.data[i])),
                  "final map element %zu: tail %g, backbone %g", i, out[i], f.final.data[i]);
    /* parameters round trip through a flat block */
    dn_tail t2;
    cr_assert_eq(dn_tail_with_params(&t2, &bb, t.params, t.n_params, &err), DN_OK, "%s", err.msg);
    cr_assert(memcmp(t2.layer[2].weight, t.layer[2].weight, dn_node_weight_count(&t.layer[2]) * 4) == 0);
    dn_tail_free(&t2);
    cr_assert_eq(dn_tail_with_params(&t2, &bb, t.params, t.n_params - 1, &err), DN_EMISMATCH);
    cr_assert_null(t2.params, "a refused tail keeps nothing");
    dn_tail_free(&t);
    dn_tail_free(&t2);
    free(acts);
    free(img.rgb);
    dn_feats_free(&f);
    dn_extractor_free(&x);
    dn_backbone_free(&bb);
}
