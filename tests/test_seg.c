/* The defect classifier: mask cells, inputs, the loss and its gradient against finite
 * differences, and training on data a linear rule separates. */
#include "test_util.h"

#include "dn_features.h"
#include "dn_image.h"
#include "dn_metrics.h"
#include "dn_seg.h"
#include "dn_train.h"

#include <math.h>
#include <stdlib.h>

static void fill_mask(dn_image *m, int w, int h, int (*inside)(int x, int y))
{
    m->width = w;
    m->height = h;
    m->rgb = calloc((size_t)w * h * 3, 1);
    cr_assert_not_null(m->rgb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            m->rgb[3 * (y * w + x)] = inside(x, y) ? 255 : 0;
}

static int left_column(int x, int y)
{
    (void)y;
    return x < 1;
}

static int top_left_pixel(int x, int y)
{
    return x == 0 && y == 0;
}

Test(seg, mask_cells_are_the_defect_share_of_each_cell)
{
    dn_image m;
    dn_error err;
    float cells[4];
    /* 4x4 mask, left column defect, 2x2 grid: the left cells are half defect */
    fill_mask(&m, 4, 4, left_column);
    cr_assert_eq(dn_seg_mask_cells(&m, 2, 2, cells, &err), DN_OK, "%s", err.msg);
    cr_assert_float_eq(cells[0], 0.5f, 1e-6);
    cr_assert_float_eq(cells[1], 0.0f, 1e-6);
    cr_assert_float_eq(cells[2], 0.5f, 1e-6);
    cr_assert_float_eq(cells[3], 0.0f, 1e-6);
    dn_image_free(&m);
    /* 5x3 mask (not a multiple of the grid): cell (0,0) covers columns 0..1, row 0 */
    fill_mask(&m, 5, 3, top_left_pixel);
    cr_assert_eq(dn_seg_mask_cells(&m, 2, 2, cells, &err), DN_OK, "%s", err.msg);
    cr_assert_float_eq(cells[0], 0.5f, 1e-6, "one of the 2 pixels of cell (0, 0): %g", cells[0]);
    cr_assert_float_eq(cells[1] + cells[2] + cells[3], 0.0f, 1e-6);
    /* a grid finer than the mask: empty cells are not defect, never a division by zero */
    float fine[36];
    cr_assert_eq(dn_seg_mask_cells(&m, 6, 6, fine, &err), DN_OK, "%s", err.msg);
    for (int i = 0; i < 36; i++)
        cr_assert(isfinite(fine[i]) && fine[i] >= 0 && fine[i] <= 1);
    cr_assert_eq(dn_seg_mask_cells(&m, 0, 2, cells, &err), DN_EINVAL);
    dn_image_free(&m);
}

/* The mask of a training anomaly turns with its augmented copies. */
Test(seg, mask_file_cells_follow_the_augmentations)
{
    char root[64], path[128];
    dn_test_mkdtemp(root, "dn_seg_");
    snprintf(path, sizeof path, "%s/mask.png", root);
    enum { S = 8, G = 4 };
    uint8_t rgb[S * S * 3] = {0};
    for (int c = 0; c < 3; c++)
        rgb[c] = 255, rgb[3 + c] = 255; /* top-left corner: 2 pixels of cell (0, 0) */
    dn_error err;
    cr_assert_eq(dn_png_write(path, S, S, 3, rgb, &err), DN_OK, "%s", err.msg);
    float cells[DN_AUGMENTATIONS * G * G], turned[G * G];
    cr_assert_eq(dn_train_mask_cells(path, G, cells, &err), DN_OK, "%s", err.msg);
    cr_assert_float_eq(cells[0], 0.5f, 1e-6);
    for (int aug = 0; aug < DN_AUGMENTATIONS; aug++) {
        dn_dihedral(cells, G, 1, aug, turned);
        cr_assert(memcmp(turned, cells + aug * G * G, sizeof turned) == 0, "augmentation %d", aug);
    }
    snprintf(path, sizeof path, "%s/missing.png", root);
    cr_assert_neq(dn_train_mask_cells(path, G, cells, &err), DN_OK);
    cr_assert(err.msg[0]);
    dn_test_rmtree(root);
}

Test(seg, inputs_are_descriptor_and_difference_from_the_image_mean)
{
    const float desc[3 * 2] = {1, 10, 2, 20, 6, 30}; /* 3 patches, 2 dims: means 3, 20 */
    float in[3 * 4];
    dn_seg_inputs(desc, 3, 2, in);
    const float want[3 * 4] = {1, 10, -2, -10, 2, 20, -1, 0, 6, 30, 3, 10};
    for (int i = 0; i < 12; i++)
        cr_assert_float_eq(in[i], want[i], 1e-6, "input %d: %g", i, in[i]);
}

Test(seg, loss_gradient_matches_finite_differences)
{
    enum { N = 7, D = 5 };
    uint64_t s = 3;
    float x[N * D], y[N], w[D + 1], g[D + 1];
    for (int i = 0; i < N * D; i++)
        x[i] = dn_test_uniform(&s, -1.5f, 1.5f);
    for (int i = 0; i < N; i++)
        y[i] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.0f : 0.4f; /* hard and soft labels */
    for (int j = 0; j <= D; j++)
        w[j] = dn_test_uniform(&s, -0.8f, 0.8f);
    double loss = dn_seg_loss(w, x, y, N, D, 2.5f, 0.1f, g);
    cr_assert(isfinite(loss) && loss > 0);
    for (int j = 0; j <= D; j++) {
        float keep = w[j], h = 1e-2f;
        w[j] = keep + h;
        double up = dn_seg_loss(w, x, y, N, D, 2.5f, 0.1f, NULL);
        w[j] = keep - h;
        double down = dn_seg_loss(w, x, y, N, D, 2.5f, 0.1f, NULL);
        w[j] = keep;
        double fd = (up - down) / (2 * h);
        cr_assert(fabs(fd - g[j]) < 1e-3 * (1 + fabs(fd)), "d/dw[%d]: analytic %g, numeric %g", j, g[j], fd);
    }
}

/* Defect patches differ from normal ones along one direction, with an offset the
 * standardisation must carry: the trained logits rank them apart, scored on raw inputs. */
Test(seg, training_separates_and_folds_the_standardisation)
{
    enum { N = 600, D = 6 };
    uint64_t s = 11;
    float *x = malloc(sizeof(float) * N * D), y[N], z[N];
    uint8_t lab[N];
    for (int i = 0; i < N; i++) {
        int defect = i % 4 == 0;
        for (int j = 0; j < D; j++)
            x[i * D + j] = 50.0f + dn_test_uniform(&s, -1, 1) * (j == 2 ? 10.0f : 1.0f);
        x[i * D + 4] += defect ? 3.0f : 0.0f;
        y[i] = (float)defect;
        lab[i] = (uint8_t)defect;
    }
    dn_seg m, again;
    dn_seg_init(&m);
    dn_seg_init(&again);
    dn_seg_opts o;
    dn_seg_opts_default(&o);
    dn_error err;
    cr_assert_eq(dn_seg_train(&m, x, y, N, D, &o, &err), DN_OK, "%s", err.msg);
    dn_seg_scores(&m, x, N, z);
    double auroc = dn_auroc(z, lab, N);
    cr_assert_gt(auroc, 0.999, "AUROC %g", auroc);
    cr_assert_eq(dn_seg_train(&again, x, y, N, D, &o, &err), DN_OK);
    cr_assert(memcmp(m.w, again.w, sizeof(float) * (D + 1)) == 0, "deterministic");
    /* one class only: refused */
    for (int i = 0; i < N; i++)
        y[i] = 0;
    cr_assert_eq(dn_seg_train(&again, x, y, N, D, &o, &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "both classes") != NULL, "%s", err.msg);
    /* the budget is checked at every step */
    y[0] = 1;
    o.deadline = 1e-9;
    cr_assert_eq(dn_seg_train(&again, x, y, N, D, &o, &err), DN_ETIMEDOUT);
    dn_seg_free(&m);
    dn_seg_free(&again);
    free(x);
}

Test(seg, smoothing_is_the_binomial_kernel_renormalised_at_borders)
{
    float map[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0}, scratch[9];
    dn_seg_smooth(map, 3, 3, scratch);
    cr_assert_float_eq(map[4], 4.0f / 16, 1e-6, "centre %g", map[4]);
    cr_assert_float_eq(map[1], 2.0f / 12, 1e-6, "edge %g", map[1]);
    cr_assert_float_eq(map[0], 1.0f / 9, 1e-6, "corner %g", map[0]);
    float flat[6] = {2, 2, 2, 2, 2, 2};
    dn_seg_smooth(flat, 2, 3, scratch);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(flat[i], 2.0f, 1e-6, "a constant map stays constant");
}
