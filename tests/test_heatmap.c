/* Tests of dn_heatmap: rendering against naive references written here (bilinear with
 * half-pixel centres, 2-D Gaussian convolution with reflect-101 borders), the overlay's
 * promises, the cell tiling and the PNG path. */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "dn_heatmap.h"
#include "dn_image.h"
#include "dn_limits.h"

/* ---- References ---------------------------------------------------------------------- */

static float *random_grid(int rows, int cols, uint64_t seed)
{
    float *g = malloc(sizeof(float) * rows * cols);
    cr_assert(g);
    for (int i = 0; i < rows * cols; i++)
        g[i] = dn_test_uniform(&seed, 0.0f, 1.0f);
    return g;
}

/* Half-pixel centres, position clamped at 0, upper neighbour clamped at the last sample. */
static double ref_bilinear_at(const float *g, int rows, int cols, int w, int h, int x, int y)
{
    double sx = fmax((x + 0.5) * cols / w - 0.5, 0.0), sy = fmax((y + 0.5) * rows / h - 0.5, 0.0);
    int x0 = (int)floor(sx), y0 = (int)floor(sy);
    int x1 = x0 + 1 < cols ? x0 + 1 : cols - 1, y1 = y0 + 1 < rows ? y0 + 1 : rows - 1;
    double fx = sx - x0, fy = sy - y0;
    double top = (1 - fx) * g[y0 * cols + x0] + fx * g[y0 * cols + x1];
    double bottom = (1 - fx) * g[y1 * cols + x0] + fx * g[y1 * cols + x1];
    return (1 - fy) * top + fy * bottom;
}

static double *ref_bilinear(const float *g, int rows, int cols, int w, int h)
{
    double *out = malloc(sizeof(double) * w * h);
    cr_assert(out);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            out[y * w + x] = ref_bilinear_at(g, rows, cols, w, h, x, y);
    return out;
}

/* Mirror without repeating the edge, one reflection at a time. */
static int ref_reflect(int i, int n)
{
    while (n > 1 && (i < 0 || i >= n))
        i = i < 0 ? -i : 2 * (n - 1) - i;
    return n > 1 ? i : 0;
}

/* Direct 2-D convolution with exp(-(dx^2+dy^2)/(2 sigma^2)) over the square of radius
 * ceil(4 sigma), divided by the kernel's sum. */
static double *ref_blur(const double *in, int w, int h, double sigma)
{
    int r = (int)ceil(4 * sigma);
    double *out = malloc(sizeof(double) * w * h), norm = 0;
    cr_assert(out);
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            norm += exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int dy = -r; dy <= r; dy++)
                for (int dx = -r; dx <= r; dx++)
                    s += exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) *
                         in[ref_reflect(y + dy, h) * w + ref_reflect(x + dx, w)];
            out[y * w + x] = s / norm;
        }
    return out;
}

static float *render(const float *g, int rows, int cols, int w, int h, float sigma)
{
    float *out = malloc(sizeof(float) * w * h);
    dn_error err;
    dn_error_clear(&err);
    cr_assert(out);
    cr_assert_eq(dn_heatmap_render(g, rows, cols, w, h, sigma, out, &err), DN_OK, "%s", err.msg);
    return out;
}

static void assert_close(const float *got, const double *want, int w, int h, double tol,
                         const char *what)
{
    for (int i = 0; i < w * h; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol, "%s: pixel (%d,%d) is %.7f, want %.7f", what,
                  i % w, i / w, got[i], want[i]);
}

/* ---- Render -------------------------------------------------------------------------- */

Test(heatmap, constant_grid_stays_constant)
{
    static const int sizes[][4] = {{14, 14, 224, 224}, {14, 14, 301, 97}, {1, 1, 8, 5},
                                   {28, 28, 13, 17}, {3, 5, 1, 1}};
    static const float sigmas[] = {0, 1.5f, 4};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t s = 0; s < sizeof sigmas / sizeof *sigmas; s++) {
            int rows = sizes[i][0], cols = sizes[i][1], w = sizes[i][2], h = sizes[i][3];
            float *g = malloc(sizeof(float) * rows * cols);
            cr_assert(g);
            for (int j = 0; j < rows * cols; j++)
                g[j] = 3.25f;
            float *out = render(g, rows, cols, w, h, sigmas[s]);
            for (int j = 0; j < w * h; j++)
                cr_assert(fabsf(out[j] - 3.25f) <= 3.25f * 1e-6f,
                          "%dx%d -> %dx%d sigma %g: pixel %d is %.8f", rows, cols, w, h,
                          (double)sigmas[s], j, out[j]);
            free(out);
            free(g);
        }
}

Test(heatmap, upsampling_matches_naive_bilinear)
{
    /* Integer and non-integer ratios, growing and shrinking, a single cell, identity. */
    static const int sizes[][4] = {{14, 14, 224, 224}, {14, 14, 100, 73}, {3, 5, 7, 11},
                                   {1, 1, 5, 9},       {28, 28, 13, 17},  {7, 3, 3, 7},
                                   {2, 9, 1000, 3},    {5, 4, 5, 4}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int rows = sizes[i][0], cols = sizes[i][1], w = sizes[i][2], h = sizes[i][3];
        float *g = random_grid(rows, cols, 11 + i);
        float *out = render(g, rows, cols, w, h, 0);
        double *want = ref_bilinear(g, rows, cols, w, h);
        assert_close(out, want, w, h, 1e-6, "bilinear");
        free(want);
        free(out);
        free(g);
    }
}

Test(heatmap, sigma_zero_is_no_blur)
{
    /* At the grid's own size nothing is resampled: the output is the grid, bit for bit,
     * for sigma 0 and any negative sigma. A blur would move the impulse's mass around. */
    float g[9 * 7] = {0};
    g[4 * 7 + 3] = 1;
    g[0] = -2;
    static const float sigmas[] = {0, -1, -INFINITY};
    for (size_t s = 0; s < sizeof sigmas / sizeof *sigmas; s++) {
        float *out = render(g, 9, 7, 7, 9, sigmas[s]);
        cr_assert(memcmp(out, g, sizeof g) == 0, "sigma %g changed the map", (double)sigmas[s]);
        free(out);
    }
    float *blurred = render(g, 9, 7, 7, 9, 0.5f);
    cr_assert_lt(blurred[4 * 7 + 3], 0.9f, "sigma 0.5 must blur (centre %g)",
                 (double)blurred[4 * 7 + 3]);
    free(blurred);
}

Test(heatmap, blur_of_impulse_keeps_sum_and_symmetry)
{
    enum { N = 41, C = 20 };
    float g[N * N] = {0};
    g[C * N + C] = 1;
    float *out = render(g, N, N, N, N, 3); /* radius 12: the kernel stays off the borders */
    double sum = 0;
    for (int i = 0; i < N * N; i++)
        sum += out[i];
    cr_assert(fabs(sum - 1) < 1e-5, "impulse sum %.8f, want 1", sum);
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            float v = out[y * N + x];
            cr_assert(fabsf(v - out[y * N + (N - 1 - x)]) < 1e-7f, "not mirror-symmetric in x");
            cr_assert(fabsf(v - out[(N - 1 - y) * N + x]) < 1e-7f, "not mirror-symmetric in y");
            cr_assert(fabsf(v - out[x * N + y]) < 1e-7f, "not symmetric under transposition");
            cr_assert(v <= out[C * N + C], "the peak moved to (%d,%d)", x, y);
        }
    /* The centre of a normalised 1-D Gaussian of sigma 3, squared. */
    double k0 = 0;
    for (int t = -12; t <= 12; t++)
        k0 += exp(-t * t / 18.0);
    cr_assert(fabs(out[C * N + C] - 1 / (k0 * k0)) < 1e-6, "peak %.7f, want %.7f",
              out[C * N + C], 1 / (k0 * k0));
    free(out);
}

Test(heatmap, blur_matches_naive_2d_convolution)
{
    /* Same-size grid: a pure blur. sigma 4 has radius 16, wider than both sides, so the
     * reflections fold more than once. */
    static const float sigmas[] = {0.7f, 1.5f, 4};
    enum { W = 13, H = 9 };
    float *g = random_grid(H, W, 5);
    double gd[W * H];
    for (int i = 0; i < W * H; i++)
        gd[i] = g[i];
    for (size_t s = 0; s < sizeof sigmas / sizeof *sigmas; s++) {
        float *out = render(g, H, W, W, H, sigmas[s]);
        double *want = ref_blur(gd, W, H, sigmas[s]);
        assert_close(out, want, W, H, 2e-6, "blur");
        free(want);
        free(out);
    }
    free(g);
}

Test(heatmap, render_matches_upsample_then_blur)
{
    static const int sizes[][4] = {{5, 4, 23, 31}, {14, 14, 50, 38}, {1, 3, 17, 4}, {6, 6, 5, 5}};
    static const float sigmas[] = {0.8f, 2, 5};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t s = 0; s < sizeof sigmas / sizeof *sigmas; s++) {
            int rows = sizes[i][0], cols = sizes[i][1], w = sizes[i][2], h = sizes[i][3];
            float *g = random_grid(rows, cols, 100 + i);
            double *up = ref_bilinear(g, rows, cols, w, h);
            double *want = ref_blur(up, w, h, sigmas[s]);
            float *out = render(g, rows, cols, w, h, sigmas[s]);
            assert_close(out, want, w, h, 2e-6, "upsample+blur");
            free(out);
            free(want);
            free(up);
            free(g);
        }
}

static void assert_refused(const float *g, int rows, int cols, int w, int h, float sigma,
                           float *out, int code)
{
    dn_error err;
    dn_error_clear(&err);
    int rc = dn_heatmap_render(g, rows, cols, w, h, sigma, out, &err);
    cr_assert_eq(rc, code, "grid %dx%d -> %dx%d sigma %g: got %d (%s), want %d", rows, cols, w,
                 h, (double)sigma, rc, err.msg, code);
    cr_assert_eq(err.code, code);
    cr_assert(err.msg[0], "no message");
}

Test(heatmap, bad_sizes_refused)
{
    float g[4] = {1, 2, 3, 4}, out[16];
    assert_refused(NULL, 2, 2, 4, 4, 0, out, DN_EINVAL);
    assert_refused(g, 2, 2, 4, 4, 0, NULL, DN_EINVAL);
    assert_refused(g, 0, 2, 4, 4, 0, out, DN_EINVAL);
    assert_refused(g, 2, -1, 4, 4, 0, out, DN_EINVAL);
    assert_refused(g, 2, 2, 0, 4, 0, out, DN_EINVAL);
    assert_refused(g, 2, 2, 4, -3, 0, out, DN_EINVAL);
    assert_refused(g, 2, 2, 4, 4, NAN, out, DN_EINVAL);
    /* Refused before anything is allocated or written: out is far too small. */
    assert_refused(g, 2, 2, 10000, 5000, 0, out, DN_ETOOBIG);
    assert_refused(g, 2, 2, DN_MAX_IMAGE_SIDE + 1, 1, 0, out, DN_ETOOBIG);
    assert_refused(g, DN_MAX_INPUT_SIDE + 1, 2, 4, 4, 0, out, DN_ETOOBIG);
    assert_refused(g, 2, 2, 4, 4, DN_HEATMAP_MAX_SIGMA * 2, out, DN_ETOOBIG);
    assert_refused(g, 2, 2, 4, 4, INFINITY, out, DN_ETOOBIG);
    /* The limits themselves are accepted. */
    dn_error err;
    cr_assert_eq(dn_heatmap_render(g, 2, 2, 4, 4, DN_HEATMAP_MAX_SIGMA, out, &err), DN_OK, "%s",
                 err.msg);
}

/* ---- Overlay ------------------------------------------------------------------------- */

static dn_image random_photo(int w, int h, uint64_t seed)
{
    dn_image img = {w, h, malloc((size_t)w * h * 3)};
    cr_assert(img.rgb);
    for (int i = 0; i < w * h * 3; i++)
        img.rgb[i] = (uint8_t)dn_test_rand(&seed);
    return img;
}

Test(heatmap, overlay_at_or_below_lo_is_the_photo)
{
    enum { W = 37, H = 23 };
    static const float cold[] = {0.2f, 0.1999f, -1, -INFINITY, NAN, -1e30f};
    dn_image photo = random_photo(W, H, 3);
    float map[W * H];
    uint8_t out[W * H * 3];
    for (int i = 0; i < W * H; i++)
        map[i] = cold[i % (sizeof cold / sizeof *cold)];
    dn_heatmap_overlay(&photo, map, 0.2f, 0.8f, 0.6f, out);
    cr_assert(memcmp(out, photo.rgb, sizeof out) == 0, "a cold pixel was painted");
    dn_heatmap_overlay(&photo, map, 0.2f, 0.8f, 1.0f, out);
    cr_assert(memcmp(out, photo.rgb, sizeof out) == 0, "a cold pixel was painted at alpha 1");
    dn_image_free(&photo);
}

Test(heatmap, overlay_at_or_above_hi_is_top_colour_at_alpha_max)
{
    enum { W = 19, H = 11 };
    static const float hot[] = {0.8f, 0.81f, 5, INFINITY, 1e30f};
    static const int top[3] = {252, 255, 164}; /* inferno(1) */
    /* alpha_max is clamped to [0, 1]; NaN counts as 0. */
    static const float alphas[] = {0.6f, 1.0f, 0.25f, 1.5f, -0.5f, NAN};
    static const double used[] = {0.6, 1.0, 0.25, 1.0, 0, 0};
    dn_image photo = random_photo(W, H, 4);
    float map[W * H];
    uint8_t out[W * H * 3];
    for (int i = 0; i < W * H; i++)
        map[i] = hot[i % (sizeof hot / sizeof *hot)];
    for (size_t a = 0; a < sizeof alphas / sizeof *alphas; a++) {
        dn_heatmap_overlay(&photo, map, 0.2f, 0.8f, alphas[a], out);
        for (int i = 0; i < W * H * 3; i++) {
            double want = photo.rgb[i] * (1 - used[a]) + top[i % 3] * used[a];
            cr_assert(fabs(out[i] - want) <= 0.51, "alpha %g, byte %d: %d, want %.2f",
                      (double)alphas[a], i, out[i], want);
        }
    }
    dn_image_free(&photo);
}

static double luma(const uint8_t *p)
{
    return 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2];
}

Test(heatmap, overlay_heat_rises_along_a_ramp)
{
    /* Over a black photo the overlay is alpha_max * t * inferno(t): its lightness must rise
     * with the score (per step within rounding, strictly over every 16 steps). */
    enum { W = 257 };
    dn_image photo = {W, 1, calloc(W * 3, 1)};
    cr_assert(photo.rgb);
    float map[W];
    uint8_t out[W * 3];
    for (int i = 0; i < W; i++)
        map[i] = 10 + 20.0f * (i - 1) / (W - 2); /* 10 (= lo) at i = 1, 30 (= hi) at W - 1 */
    dn_heatmap_overlay(&photo, map, 10, 30, 0.6f, out);
    cr_assert(out[0] == 0 && out[3] == 0 && out[4] == 0 && out[5] == 0, "lo must stay black");
    for (int i = 1; i + 1 < W; i++)
        cr_assert(luma(out + 3 * (i + 1)) >= luma(out + 3 * i) - 0.6,
                  "lightness falls from %.2f to %.2f at %d", luma(out + 3 * i),
                  luma(out + 3 * (i + 1)), i);
    for (int i = 1; i + 16 < W; i += 16)
        cr_assert(luma(out + 3 * (i + 16)) > luma(out + 3 * i), "flat heat at %d", i);
    cr_assert(luma(out + 3 * (W - 1)) > 0.6 * 245, "the hottest pixel is too dark");
    /* The hue moves from purple (blue over red) to orange and yellow (red over blue). */
    const uint8_t *cool = out + 3 * (W / 5), *warm = out + 3 * (4 * W / 5);
    cr_assert(cool[2] > cool[1] && warm[0] > warm[2], "not a heat scale: %d,%d,%d / %d,%d,%d",
              cool[0], cool[1], cool[2], warm[0], warm[1], warm[2]);
    free(photo.rgb);
}

Test(heatmap, overlay_blends_inferno_at_alpha_max_times_t)
{
    /* lo 0, hi 1: v is t. Colours are inferno's anchors 3, 14 and the midpoint of 8 and 9. */
    static const float ts[] = {3.0f / 17, 0.5f, 14.0f / 17};
    static const double colour[][3] = {{56, 9, 98}, {187, 55, 84}, {252, 176, 20}};
    uint8_t grey[3 * 3], out[3 * 3];
    memset(grey, 200, sizeof grey);
    dn_image photo = {3, 1, grey};
    dn_heatmap_overlay(&photo, ts, 0, 1, 0.8f, out);
    for (int i = 0; i < 3; i++)
        for (int ch = 0; ch < 3; ch++) {
            double alpha = 0.8 * ts[i], want = 200 + alpha * (colour[i][ch] - 200);
            cr_assert(fabs(out[3 * i + ch] - want) <= 1, "t %g channel %d: %d, want %.1f",
                      (double)ts[i], ch, out[3 * i + ch], want);
        }
}

Test(heatmap, overlay_with_hi_not_above_lo_is_a_step)
{
    dn_image photo = {3, 1, (uint8_t[]){10, 20, 30, 40, 50, 60, 70, 80, 90}};
    float map[3] = {0.5f, 0.5001f, -3};
    uint8_t out[9];
    dn_heatmap_overlay(&photo, map, 0.5f, 0.5f, 1.0f, out);
    cr_assert(out[0] == 10 && out[1] == 20 && out[2] == 30, "v = lo painted");
    cr_assert(out[3] == 252 && out[4] == 255 && out[5] == 164, "v > lo not fully hot");
    cr_assert(out[6] == 70 && out[7] == 80 && out[8] == 90, "v < lo painted");
}

/* ---- Cells --------------------------------------------------------------------------- */

Test(heatmap, cell_boxes_tile_the_photo)
{
    static const int cases[][4] = {{14, 14, 1000, 750}, {3, 7, 10, 10}, {28, 28, 100, 37},
                                   {5, 3, 4, 7},        {1, 1, 9, 2},   {10, 12, 7, 3},
                                   {14, 14, 224, 224}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rows = cases[i][0], cols = cases[i][1], w = cases[i][2], h = cases[i][3];
        int *hits = calloc((size_t)w * h, sizeof *hits);
        cr_assert(hits);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                dn_box b = dn_heatmap_cell_box(r, c, rows, cols, w, h);
                cr_assert(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= w && b.y1 <= h && b.x0 <= b.x1 &&
                          b.y0 <= b.y1, "cell (%d,%d) box out of the photo", r, c);
                cr_assert(rows > h || cols > w || (b.x1 > b.x0 && b.y1 > b.y0),
                          "cell (%d,%d) empty though the grid is coarser than the photo", r, c);
                for (int y = b.y0; y < b.y1; y++)
                    for (int x = b.x0; x < b.x1; x++) {
                        /* The pixel's centre lies in the cell. */
                        double cx = (x + 0.5) * cols / w, cy = (y + 0.5) * rows / h;
                        cr_assert(cx >= c && cx < c + 1 && cy >= r && cy < r + 1,
                                  "pixel (%d,%d) is not in cell (%d,%d)", x, y, r, c);
                        hits[y * w + x]++;
                    }
            }
        for (int j = 0; j < w * h; j++)
            cr_assert_eq(hits[j], 1, "%dx%d grid on %dx%d: pixel (%d,%d) covered %d times", rows,
                         cols, w, h, j % w, j / w, hits[j]);
        free(hits);
    }
    dn_box none = dn_heatmap_cell_box(14, 0, 14, 14, 100, 100);
    cr_assert(none.x0 == none.x1 && none.y0 == none.y1, "a cell outside the grid has pixels");
}

/* ---- PNG ----------------------------------------------------------------------------- */

static const uint8_t *px(const dn_image *img, int x, int y)
{
    return img->rgb + ((size_t)y * img->width + x) * 3;
}

static int is_cyan(const uint8_t *p)
{
    return p[0] == 0 && p[1] == 255 && p[2] == 255;
}

Test(heatmap, png_decodes_to_photo_size_and_matches_render_plus_overlay)
{
    enum { W = 61, H = 47, R = 5, C = 7 };
    dn_image photo = random_photo(W, H, 9);
    float *g = random_grid(R, C, 10);
    uint8_t *png = NULL;
    size_t len = 0;
    dn_error err;
    dn_error_clear(&err);
    cr_assert_eq(dn_heatmap_png(&photo, g, R, C, 2.5f, 0.3f, 0.9f, NULL, 0, &png, &len, &err),
                 DN_OK, "%s", err.msg);
    dn_image dec;
    dn_image_init(&dec);
    cr_assert_eq(dn_image_decode(&dec, png, len, NULL, &err), DN_OK, "%s", err.msg);
    cr_assert(dec.width == W && dec.height == H, "decoded %dx%d", dec.width, dec.height);

    /* One code path: the row-by-row image equals render followed by overlay. */
    float *map = render(g, R, C, W, H, 2.5f);
    uint8_t *want = malloc(W * H * 3);
    cr_assert(want);
    dn_heatmap_overlay(&photo, map, 0.3f, 0.9f, DN_HEATMAP_ALPHA, want);
    cr_assert(memcmp(dec.rgb, want, W * H * 3) == 0, "PNG differs from render + overlay");
    cr_assert(memcmp(dec.rgb, photo.rgb, W * H * 3) != 0, "nothing was painted");

    char path[] = "/tmp/dn_heatmap_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(dn_heatmap_write(path, &photo, g, R, C, 2.5f, 0.3f, 0.9f, NULL, 0, &err), DN_OK,
                 "%s", err.msg);
    dn_image from_file;
    dn_image_init(&from_file);
    cr_assert_eq(dn_image_load(&from_file, path, NULL, &err), DN_OK, "%s", err.msg);
    cr_assert(memcmp(from_file.rgb, want, W * H * 3) == 0, "file differs from memory PNG");
    unlink(path);

    dn_image_free(&from_file);
    free(want);
    free(map);
    dn_image_free(&dec);
    free(png);
    free(g);
    dn_image_free(&photo);
}

Test(heatmap, boxes_are_outlined)
{
    enum { W = 40, H = 32 };
    dn_image photo = random_photo(W, H, 12);
    float g[4] = {0, 0, 0, 0}; /* all at lo: the overlay is the photo */
    dn_box boxes[] = {{10, 10, 30, 25}, {-5, -5, 3, 3}, {5, 5, 5, 9}, {38, 30, 100, 100}};
    dn_image out;
    dn_image_init(&out);
    dn_error err;
    cr_assert_eq(dn_heatmap_image(&photo, g, 2, 2, 1, 0, 1, boxes, 4, &out, &err), DN_OK, "%s",
                 err.msg);
    static const int edge[][2] = {{10, 10}, {29, 10}, {10, 24}, {29, 24}, {11, 11}, {20, 11},
                                  {28, 17}, {20, 23}, {0, 0},   {2, 2},   {39, 31}, {38, 30}};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++)
        cr_assert(is_cyan(px(&out, edge[i][0], edge[i][1])), "(%d,%d) is not on an outline",
                  edge[i][0], edge[i][1]);
    static const int plain[][2] = {{12, 12}, {20, 17}, {27, 22}, {9, 10}, {30, 24}, {20, 25},
                                   {5, 5},   {3, 3},   {5, 8},   {37, 31}};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        int x = plain[i][0], y = plain[i][1];
        cr_assert(memcmp(px(&out, x, y), px(&photo, x, y), 3) == 0, "(%d,%d) was painted", x, y);
    }
    dn_image_free(&out);
    dn_image_free(&photo);
}

Test(heatmap, image_refuses_bad_arguments)
{
    dn_image photo = random_photo(8, 8, 1), empty = {0}, out;
    dn_image_init(&out);
    float g[4] = {0};
    dn_box box = {0, 0, 4, 4};
    dn_error err;
    cr_assert_eq(dn_heatmap_image(NULL, g, 2, 2, 1, 0, 1, NULL, 0, &out, &err), DN_EINVAL);
    cr_assert_eq(dn_heatmap_image(&empty, g, 2, 2, 1, 0, 1, NULL, 0, &out, &err), DN_EINVAL);
    cr_assert_eq(dn_heatmap_image(&photo, g, 2, 2, 1, NAN, 1, NULL, 0, &out, &err), DN_EINVAL);
    cr_assert_eq(dn_heatmap_image(&photo, g, 2, 2, 1, 0, INFINITY, NULL, 0, &out, &err),
                 DN_EINVAL);
    cr_assert_eq(dn_heatmap_image(&photo, g, 2, 2, 1, 0, 1, NULL, 1, &out, &err), DN_EINVAL);
    cr_assert_eq(dn_heatmap_image(&photo, g, 2, 2, 1, 0, 1, &box, -1, &out, &err), DN_EINVAL);
    cr_assert_eq(dn_heatmap_image(&photo, g, 0, 2, 1, 0, 1, NULL, 0, &out, &err), DN_EINVAL);
    cr_assert_eq(dn_heatmap_image(&photo, NULL, 2, 2, 1, 0, 1, NULL, 0, &out, &err), DN_EINVAL);
    cr_assert(out.rgb == NULL && out.width == 0, "a failed call left an image");
    uint8_t *png = NULL;
    size_t len = 0;
    cr_assert_eq(dn_heatmap_png(&photo, g, 2, 2, 1, 0, 1, NULL, 1, &png, &len, &err), DN_EINVAL);
    cr_assert(png == NULL, "a failed call returned a PNG");
    cr_assert_eq(dn_heatmap_write("/nonexistent-dir/x.png", &photo, g, 2, 2, 1, 0, 1, NULL, 0,
                                  &err),
                 DN_EIO, "%s", err.msg);
    dn_image_free(&photo);
}
