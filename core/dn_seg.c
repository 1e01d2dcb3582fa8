#include "dn_seg.h"

#include "dn_clock.h"
#include "dn_head.h"
#include "dn_image.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dn_seg_opts_default(dn_seg_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 300;
    o->lr = 1e-2f;
    o->weight_decay = 1e-2f;
}

void dn_seg_init(dn_seg *s)
{
    memset(s, 0, sizeof *s);
}

void dn_seg_free(dn_seg *s)
{
    free(s->w);
    dn_seg_init(s);
}

static int is_defect(const uint8_t *px)
{
    return px[0] || px[1] || px[2];
}

int dn_seg_mask_cells(const dn_image *mask, int rows, int cols, float *out, dn_error *err)
{
    if (rows < 1 || cols < 1 || mask->width < 1 || mask->height < 1)
        return dn_error_set(err, DN_EINVAL, "a %dx%d mask on a %dx%d grid", mask->width,
                            mask->height, cols, rows);
    for (int r = 0; r < rows; r++) {
        int y0 = (int)((long)r * mask->height / rows), y1 = (int)((long)(r + 1) * mask->height / rows);
        for (int c = 0; c < cols; c++) {
            int x0 = (int)((long)c * mask->width / cols), x1 = (int)((long)(c + 1) * mask->width / cols);
            long in = 0, all = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++, all++)
                    in += is_defect(mask->rgb + 3 * ((size_t)y * mask->width + x));
            out[r * cols + c] = all ? (float)in / (float)all : 0.0f; /* a mask smaller than the grid */
        }
    }
    return DN_OK;
}

static double softplus(double z)
{
    return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

double dn_seg_loss(const float *w, const float *x, const float *y, size_t n, int dim,
                   float pos_weight, float weight_decay, float *grad)
{
    float *z = malloc((n ? n : 1) * sizeof *z);
    if (!z)
        return NAN;
    for (size_t i = 0; i < n; i++)
        z[i] = w[dim];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, dim, 1.0f, x, dim, w, 1, 1.0f, z, 1);
    double loss = 0, gb = 0;
    for (size_t i = 0; i < n; i++) {
        double zi = z[i], sig = 1.0 / (1.0 + exp(-zi));
        loss += pos_weight * y[i] * softplus(-zi) + (1.0 - y[i]) * softplus(zi);
        z[i] = (float)((pos_weight * y[i] * (sig - 1.0) + (1.0 - y[i]) * sig) / (double)n); /* d loss / d z_i */
        gb += z[i];
    }
    loss /= (double)n;
    double l2 = 0;
    for (int j = 0; j < dim; j++)
        l2 += (double)w[j] * w[j];
    loss += 0.5 * weight_decay * l2;
    if (grad) {
        for (int j = 0; j < dim; j++)
            grad[j] = weight_decay * w[j];
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, dim, 1.0f, x, dim, z, 1, 1.0f, grad, 1);
        grad[dim] = (float)gb;
    }
    free(z);
    return loss;
}

/* Column means and standard deviations (at least 1e-6) of n x dim rows. */
static void column_stats(const float *x, size_t n, int dim, float *mu, float *sd)
{
    for (int j = 0; j < dim; j++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
            double v = x[i * dim + j];
            s += v;
            s2 += v * v;
        }
        double m = s / (double)n, var = s2 / (double)n - m * m;
        mu[j] = (float)m;
        sd[j] = (float)fmax(sqrt(fmax(var, 0.0)), 1e-6);
    }
}

/* Trains on standardised rows z, then folds the standardisation into s->w. */
static int fit(dn_seg *s, const float *z, const float *y, size_t n, int dim, float pos_weight,
               const float *mu, const float *sd, const dn_seg_opts *o, dn_error *err)
{
    float *grad = malloc(((size_t)dim + 1) * sizeof *grad);
    dn_adam a;
    if (dn_adam_init(&a, (size_t)dim + 1) || !grad) {
        free(grad), dn_adam_free(&a);
        return dn_error_set(err, DN_ENOMEM, "out of memory training the defect classifier");
    }
    int rc = DN_OK;
    for (int step = 0; step < o->steps && !rc; step++) {
        if (dn_clock_past(o->deadline) || (o->cancel && *o->cancel))
            rc = dn_error_set(err, DN_ETIMEDOUT,
                              "time budget ran out training the defect classifier (step %d of %d)",
                              step, o->steps);
        else if (isnan(dn_seg_loss(s->w, z, y, n, dim, pos_weight, o->weight_decay, grad)))
            rc = dn_error_set(err, DN_ENOMEM, "out of memory training the defect classifier");
        else
            dn_adam_step(&a, s->w, grad, (size_t)dim + 1, o->lr);
    }
    for (int j = 0; !rc && j < dim; j++) { /* w . (x - mu) / sd + b = (w / sd) . x + b' */
        s->w[j] /= sd[j];
        s->w[dim] -= s->w[j] * mu[j];
    }
    free(grad);
    dn_adam_free(&a);
    return rc;
}

int dn_seg_train(dn_seg *s, const float *x, const float *y, size_t n, int dim,
                 const dn_seg_opts *o, dn_error *err)
{
    double pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += y[i];
    if (dim < 1 || !(pos > 0) || !(pos < (double)n))
        return dn_error_set(err, DN_EINVAL, "the defect classifier needs both classes (%.1f of %zu defect)",
                            pos, n);
    dn_seg_free(s);
    s->dim = dim;
    s->w = calloc((size_t)dim + 1, sizeof *s->w);
    float *z = malloc(n * dim * sizeof *z), *mu = malloc(2 * (size_t)dim * sizeof *mu);
    int rc = s->w && z && mu ? DN_OK : dn_error_set(err, DN_ENOMEM, "out of memory training the defect classifier");
    if (!rc) {
        float *sd = mu + dim;
        column_stats(x, n, dim, mu, sd);
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < dim; j++)
                z[i * dim + j] = (x[i * dim + j] - mu[j]) / sd[j];
        rc = fit(s, z, y, n, dim, (float)(((double)n - pos) / pos), mu, sd, o, err);
    }
    free(z);
    free(mu);
    if (rc)
        dn_seg_free(s);
    return rc;
}

void dn_seg_scores(const dn_seg *s, const float *x, int n, float *out)
{
    for (int i = 0; i < n; i++)
        out[i] = s->w[s->dim];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, s->dim, 1.0f, x, s->dim, s->w, 1, 1.0f, out, 1);
}

void dn_seg_inputs(const float *desc, int n, int dim, float *out)
{
    double *mean = calloc((size_t)dim, sizeof *mean);
    for (int p = 0; mean && p < n; p++)
        for (int j = 0; j < dim; j++)
            mean[j] += desc[(size_t)p * dim + j];
    for (int p = 0; p < n; p++)
        for (int j = 0; j < dim; j++) {
            float v = desc[(size_t)p * dim + j];
            out[(size_t)p * 2 * dim + j] = v;
            out[(size_t)p * 2 * dim + dim + j] = mean ? v - (float)(mean[j] / n) : 0.0f;
        }
    free(mean);
}

void dn_seg_smooth(float *map, int rows, int cols, float *scratch)
{
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++) {
            float acc = 0, weight = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy < 0 || yy >= rows || xx < 0 || xx >= cols)
                        continue;
                    float w = (float)((2 - abs(dy)) * (2 - abs(dx))); /* 1 2 1 / 2 4 2 / 1 2 1 */
                    acc += w * map[yy * cols + xx];
                    weight += w;
                }
            scratch[y * cols + x] = acc / weight;
        }
    memcpy(map, scratch, (size_t)rows * cols * sizeof *map);
}
