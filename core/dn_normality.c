#include "dn_normality.h"

#include "dn_forward.h"
#include "dn_simd.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

DN_INLINE float sqdist(const float *a, const float *b, int d)
{
    dn_v16 acc = {0};
    int i = 0;
    for (; i + V16 <= d; i += V16) {
        dn_v16 t = v16_load(a + i) - v16_load(b + i);
        acc += t * t;
    }
    float s = v16_sum(acc);
    for (; i < d; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return s;
}

static void *dn_alloc(size_t n, size_t size)
{
    return n && size && n <= SIZE_MAX / size ? malloc(n * size) : NULL;
}

/* ---------------------------------------------------------------------------------
 * Patch descriptors: both smoothings and the pooling are separable, so each part of a
 * descriptor is one pass down the rows (a weighted sum of up to 4 input rows into a
 * line buffer) and one along the line (up to 4 pixels per output), both running over
 * whole HWC rows and channels so they vectorise. */

/* One output index of a separable filter: weights on inputs lo..lo+n-1. */
typedef struct dn_taps {
    int lo, n;
    float w[4];
} dn_taps;

/* 3x3 average along one axis, count_include_pad=False: output i averages the inputs
 * i-1..i+1 that exist (the 2D count is the product of the per-axis counts). */
static void box3_taps(int len, int i, dn_taps *t)
{
    int hi = i + 1 < len ? i + 1 : len - 1;
    t->lo = i > 0 ? i - 1 : 0;
    t->n = hi - t->lo + 1;
    for (int k = 0; k < 4; k++)
        t->w[k] = k < t->n ? 1.0f / (float)t->n : 0.0f;
}

/* 2x2 pooling of the 3x3 average along one axis: output o averages the smoothed inputs
 * 2o..2o+1 that exist, which folds into weights on inputs 2o-1..2o+2. */
static void pool_box3_taps(int len, int o, dn_taps *t)
{
    int p0 = 2 * o, p1 = 2 * o + 1 < len ? 2 * o + 1 : len - 1;
    int hi = p1 + 1 < len ? p1 + 1 : len - 1;
    t->lo = p0 > 0 ? p0 - 1 : 0;
    t->n = hi - t->lo + 1;
    memset(t->w, 0, sizeof t->w);
    for (int p = p0; p <= p1; p++) {
        dn_taps b;
        box3_taps(len, p, &b);
        for (int k = 0; k < b.n; k++)
            t->w[b.lo + k - t->lo] += b.w[k] / (float)(p1 - p0 + 1);
    }
}

/* out(r, c, 0..C) = sum_a rt[r].w[a] * sum_b ct[c].w[b] * in(rt[r].lo + a, ct[c].lo + b),
 * output pixels ostride floats apart; line holds one input row. */
DN_VECTOR_CLONES
static void sep_filter(const dn_fmap *in, const dn_taps *rt, int oh, const dn_taps *ct, int ow,
                       float *line, float *out, size_t ostride)
{
    size_t row = (size_t)in->w * in->c, c = (size_t)in->c;
    for (int r = 0; r < oh; r++) {
        const dn_taps *t = &rt[r];
        const float *src = in->data + (size_t)t->lo * row;
        for (size_t i = 0; i < row; i++)
            line[i] = t->w[0] * src[i];
        for (int a = 1; a < t->n; a++)
            for (size_t i = 0; i < row; i++)
                line[i] += t->w[a] * src[a * row + i];
        for (int x = 0; x < ow; x++) {
            const dn_taps *u = &ct[x];
            const float *l = line + (size_t)u->lo * c;
            float *o = out + ((size_t)r * ow + x) * ostride;
            for (size_t k = 0; k < c; k++)
                o[k] = u->w[0] * l[k];
            for (int b = 1; b < u->n; b++)
                for (size_t k = 0; k < c; k++)
                    o[k] += u->w[b] * l[b * c + k];
        }
    }
}

static int fmap_ok(const dn_fmap *m)
{
    return m && m->data && m->h > 0 && m->w > 0 && m->c > 0;
}

int dn_patch_descriptors(const dn_fmap *s8, const dn_fmap *s16, float *out, dn_error *err)
{
    if (!fmap_ok(s8) || !fmap_ok(s16) || !out)
        return dn_error_set(err, DN_EINVAL, "patch descriptors: missing or empty map");
    int h = s16->h, w = s16->w;
    /* Cell r pools stride-8 rows 2r..2r+1: the last one needs row 2(h-1) at least. */
    if ((long)s8->h < 2L * h - 1 || (long)s8->w < 2L * w - 1)
        return dn_error_set(err, DN_EINVAL,
                            "patch descriptors: stride-8 map %dx%d too small for a %dx%d grid",
                            s8->h, s8->w, h, w);
    size_t l8 = (size_t)s8->w * s8->c, l16 = (size_t)w * s16->c;
    size_t line = l8 > l16 ? l8 : l16;
    dn_taps *taps = dn_alloc((size_t)2 * (h + w), sizeof *taps);
    float *buf = dn_alloc(line, sizeof *buf);
    if (!taps || !buf) {
        free(taps);
        free(buf);
        return dn_error_set(err, DN_ENOMEM, "patch descriptors: out of memory");
    }
    dn_taps *rows8 = taps, *cols8 = rows8 + h, *rows16 = cols8 + w, *cols16 = rows16 + h;
    for (int r = 0; r < h; r++) {
        pool_box3_taps(s8->h, r, &rows8[r]);
        box3_taps(h, r, &rows16[r]);
    }
    for (int c = 0; c < w; c++) {
        pool_box3_taps(s8->w, c, &cols8[c]);
        box3_taps(w, c, &cols16[c]);
    }
    size_t dim = (size_t)s8->c + s16->c;
    sep_filter(s8, rows8, h, cols8, w, buf, out, dim);
    sep_filter(s16, rows16, h, cols16, w, buf, out + s8->c, dim);
    free(taps);
    free(buf);
    return DN_OK;
}

/* ---------------------------------------------------------------------------------
 * Nearest-neighbour search.
 *
 * Brute force is one sgemm of nq x n x dim: 784 x 16384 x 128 is 3.3 GFLOP, ~35 ms at
 * the ~100 GFLOP/s one core gets. Most of it can be skipped exactly with a lower bound:
 * with B orthonormal rows along the bank's principal directions and v~ = v - mean,
 *     e(v) = [B v~, ||v~ - B'B v~||]   satisfies   ||e(q) - e(x)|| <= ||q - x||
 * (Pythagoras on the subspace and its complement, then the reverse triangle inequality
 * on the complement), and with 32 directions it is tight on patch features. The bank
 * is split into leaves of nearby entries (a k-d tree on the embedding), each with its
 * bounding box there, which bounds all its entries at once.
 *
 * A query first searches the leaf whose box is nearest: bounds of its entries (a
 * 33-float dot product each, 16 entries per vector), then exact distances where the
 * bound beats the best so far. That usually finds the neighbour or one close to it.
 * Then any other leaf whose box bound still beats the best is searched the same way,
 * leaf by leaf across a block of queries so that a leaf's panels are read into cache
 * once per block. Normal patches touch a few leaves; a query the bounds cannot prune
 * (far from everything, uniform random data) stops after an evaluation budget and is
 * brute-forced with sgemm. Results are exact either way: the bounds keep a relative
 * slack far above float rounding, and distances are computed directly as
 * sum (q - x)^2, without the cancellation of ||q||^2 - 2 q.x + ||x||^2 (which only
 * picks the winner of a brute-forced query; its distance is then recomputed). */

#define DN_BANK_PCS 32     /* principal directions in the embedding */
#define DN_BANK_LEAF 128   /* entries per leaf, at most */
#define DN_LB_SLACK 1e-4f  /* relative slack on bounds (float rounding is ~1e-6) */

typedef struct dn_leaf {
    int panel, npanels; /* its entries: lanes of panels panel.. */
} dn_leaf;

/* The search structure derived from the bank (read-only after dn_bank_from). */
struct dn_bank_index {
    int pcs, edim;  /* edim = pcs + 1 */
    float *mean;    /* dim */
    float *basis;   /* pcs x dim, orthonormal rows (or zero rows on a degenerate bank) */
    float esq_max;  /* largest ||e(x)||^2, for the box slack */
    int nleaves, npanels;
    dn_leaf *leaves;
    float *box;     /* ceil(nleaves/16) blocks of [lo, hi] x edim x 16 leaves */
    float *pan;     /* npanels x edim x 16: embeddings, 16 entries side by side */
    float *pesq;    /* npanels x 16: (1 - slack) ||e||^2, +inf on padding lanes */
    int *prow;      /* npanels x 16: bank row of each lane, -1 on padding */
};

static void index_free(struct dn_bank_index *ix)
{
    if (!ix)
        return;
    free(ix->mean);
    free(ix->basis);
    free(ix->leaves);
    free(ix->box);
    free(ix->pan);
    free(ix->pesq);
    free(ix->prow);
    free(ix);
}

void dn_bank_init(dn_bank *b)
{
    memset(b, 0, sizeof *b);
}

void dn_bank_free(dn_bank *b)
{
    if (!b)
        return;
    free(b->x);
    free(b->sqnorm);
    index_free(b->ix);
    dn_bank_init(b);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double uniform01(uint64_t *s)
{
    return ((double)(splitmix64(s) >> 11) + 1.0) / 9007199254740992.0;
}

/* Makes the rows of v (k x d, doubles) orthonormal by modified Gram-Schmidt, twice per
 * row for stability; a row that was (numerically) in the span of the earlier ones
 * becomes zero, which keeps B'B a projection on a bank of low rank. */
static void orthonormalise(double *v, int k, int d)
{
    for (int i = 0; i < k; i++) {
        double *vi = v + (size_t)i * d, n0 = 0, n1 = 0;
        for (int t = 0; t < d; t++)
            n0 += vi[t] * vi[t];
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                const double *vj = v + (size_t)j * d;
                double dot = 0;
                for (int t = 0; t < d; t++)
                    dot += vi[t] * vj[t];
                for (int t = 0; t < d; t++)
                    vi[t] -= dot * vj[t];
            }
        for (int t = 0; t < d; t++)
            n1 += vi[t] * vi[t];
        double s = n1 > 1e-18 * n0 && n1 > 0 ? 1.0 / sqrt(n1) : 0.0;
        for (int t = 0; t < d; t++)
            vi[t] *= s;
    }
}

/* Top-pcs principal directions of the centred rows xc (n x dim) into basis (pcs x dim),
 * by orthogonal iteration on the covariance. Any orthonormal rows give valid bounds;
 * principal ones give tight bounds, and a few dozen iterations get close enough. */
static int principal_basis(const float *xc, int n, int dim, int pcs, float *basis)
{
    float *cov = dn_alloc((size_t)dim * dim, sizeof *cov);
    double *v = dn_alloc((size_t)pcs * dim, sizeof *v), *w = dn_alloc((size_t)pcs * dim, sizeof *w);
    if (!cov || !v || !w) {
        free(cov);
        free(v);
        free(w);
        return DN_ENOMEM;
    }
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, n, 1.0f, xc, dim, 0.0f, cov, dim);
    for (int i = 0; i < dim; i++)
        for (int j = 0; j < i; j++)
            cov[(size_t)i * dim + j] = cov[(size_t)j * dim + i];
    uint64_t s = 0x5eed;
    for (size_t i = 0; i < (size_t)pcs * dim; i++)
        v[i] = uniform01(&s) - 0.5;
    orthonormalise(v, pcs, dim);
    for (int it = 0; it < 30; it++) {
        for (int k = 0; k < pcs; k++)
            for (int i = 0; i < dim; i++) {
                const float *ci = cov + (size_t)i * dim;
                const double *vk = v + (size_t)k * dim;
                double a = 0;
                for (int j = 0; j < dim; j++)
                    a += ci[j] * vk[j];
                w[(size_t)k * dim + i] = a;
            }
        orthonormalise(w, pcs, dim);
        double *t = v;
        v = w;
        w = t;
    }
    for (size_t i = 0; i < (size_t)pcs * dim; i++)
        basis[i] = (float)v[i];
    free(cov);
    free(v);
    free(w);
    return DN_OK;
}

/* e(v) of n rows: xc holds v - mean on entry (n x dim) and the residuals on return;
 * e is n x edim. */
static void embed(const struct dn_bank_index *ix, float *xc, int n, int dim, float *e)
{
    int pcs = ix->pcs;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, pcs, dim, 1.0f, xc, dim, ix->basis,
                dim, 0.0f, e, ix->edim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dim, pcs, -1.0f, e, ix->edim,
                ix->basis, dim, 1.0f, xc, dim);
    for (int i = 0; i < n; i++) {
        const float *r = xc + (size_t)i * dim;
        float s = 0;
        for (int t = 0; t < dim; t++)
            s += r[t] * r[t];
        e[(size_t)i * ix->edim + pcs] = sqrtf(s);
    }
}

static float sqnorm(const float *v, int d)
{
    float s = 0;
    for (int t = 0; t < d; t++)
        s += v[t] * v[t];
    return s;
}

static void centre(const float *x, const float *mean, int n, int dim, float *xc)
{
    for (int i = 0; i < n; i++)
        for (int t = 0; t < dim; t++)
            xc[(size_t)i * dim + t] = x[(size_t)i * dim + t] - mean[t];
}

typedef struct dn_keyed {
    float key;
    int row;
} dn_keyed;

static int keyed_cmp(const void *a, const void *b)
{
    const dn_keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* k-d tree split of rows[0..n) on their embeddings: halves along the coordinate of
 * widest spread until a part fits a leaf; each leaf's rows end up contiguous in rows,
 * its size appended to sizes. */
static void kd_split(const float *e, int edim, int *rows, int n, dn_keyed *tmp, int *sizes,
                     int *nleaves)
{
    if (n <= DN_BANK_LEAF) {
        sizes[(*nleaves)++] = n;
        return;
    }
    int axis = 0;
    float spread = -1;
    for (int k = 0; k < edim; k++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            float v = e[(size_t)rows[i] * edim + k];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (hi - lo > spread) {
            spread = hi - lo;
            axis = k;
        }
    }
    for (int i = 0; i < n; i++)
        tmp[i] = (dn_keyed){e[(size_t)rows[i] * edim + axis], rows[i]};
    qsort(tmp, (size_t)n, sizeof *tmp, keyed_cmp);
    for (int i = 0; i < n; i++)
        rows[i] = tmp[i].row;
    kd_split(e, edim, rows, n / 2, tmp, sizes, nleaves);
    kd_split(e, edim, rows + n / 2, n - n / 2, tmp, sizes, nleaves);
}

/* Fills leaves, their boxes and the panels from the embeddings e (n x edim) and the leaf
 * order rows/sizes. */
static int layout_leaves(struct dn_bank_index *ix, const float *e, const int *rows,
                         const int *sizes)
{
    int edim = ix->edim, np = 0, nl = ix->nleaves;
    for (int l = 0; l < nl; l++)
        np += (sizes[l] + V16 - 1) / V16;
    int nbox = (nl + V16 - 1) / V16;
    ix->npanels = np;
    ix->leaves = dn_alloc((size_t)nl, sizeof *ix->leaves);
    ix->box = dn_alloc((size_t)nbox * 2 * edim * V16, sizeof *ix->box);
    ix->pan = calloc((size_t)np * edim * V16, sizeof *ix->pan);
    ix->pesq = dn_alloc((size_t)np * V16, sizeof *ix->pesq);
    ix->prow = dn_alloc((size_t)np * V16, sizeof *ix->prow);
    if (!ix->leaves || !ix->box || !ix->pan || !ix->pesq || !ix->prow)
        return DN_ENOMEM;
    /* Padding leaves get an empty box (lo = +inf): their bound is +inf. */
    for (size_t i = 0; i < (size_t)nbox * 2 * edim * V16; i++)
        ix->box[i] = (i / ((size_t)edim * V16)) % 2 ? -INFINITY : INFINITY;
    ix->esq_max = 0;
    for (int l = 0, p = 0, at = 0; l < nl; l++) {
        ix->leaves[l] = (dn_leaf){p, (sizes[l] + V16 - 1) / V16};
        float *lo = ix->box + (size_t)(l / V16) * 2 * edim * V16 + l % V16, *hi = lo + edim * V16;
        for (int i = 0; i < ix->leaves[l].npanels * V16; i++) {
            int lane = (p + i / V16) * V16 + i % V16, row = i < sizes[l] ? rows[at + i] : -1;
            float *pe = ix->pan + (size_t)(p + i / V16) * edim * V16 + i % V16;
            ix->prow[lane] = row;
            ix->pesq[lane] = INFINITY;
            if (row < 0)
                continue;
            const float *er = e + (size_t)row * edim;
            float q = sqnorm(er, edim);
            ix->pesq[lane] = (1.0f - DN_LB_SLACK) * q;
            ix->esq_max = q > ix->esq_max ? q : ix->esq_max;
            for (int k = 0; k < edim; k++) {
                pe[k * V16] = er[k];
                lo[k * V16] = er[k] < lo[k * V16] ? er[k] : lo[k * V16];
                hi[k * V16] = er[k] > hi[k * V16] ? er[k] : hi[k * V16];
            }
        }
        at += sizes[l];
        p += ix->leaves[l].npanels;
    }
    return DN_OK;
}

/* Mean of the rows, summed in double: a bank can hold 10^5 of them. */
static int bank_mean(const float *x, int n, int dim, float *mean)
{
    double *acc = calloc((size_t)dim, sizeof *acc);
    if (!acc)
        return DN_ENOMEM;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < dim; t++)
            acc[t] += x[(size_t)i * dim + t];
    for (int t = 0; t < dim; t++)
        mean[t] = (float)(acc[t] / n);
    free(acc);
    return DN_OK;
}

/* Derives the search structure of a bank whose x, n and dim are set. */
static int index_build(dn_bank *b)
{
    int n = b->n, dim = b->dim, pcs = dim < DN_BANK_PCS ? dim : DN_BANK_PCS, rc = DN_ENOMEM;
    struct dn_bank_index *ix = calloc(1, sizeof *ix);
    float *xc = dn_alloc((size_t)n * dim, sizeof *xc), *e = dn_alloc((size_t)n * (pcs + 1), sizeof *e);
    int *rows = dn_alloc((size_t)n, sizeof *rows), *sizes = dn_alloc((size_t)n, sizeof *sizes);
    dn_keyed *tmp = dn_alloc((size_t)n, sizeof *tmp);
    if (ix && xc && e && rows && sizes && tmp) {
        ix->pcs = pcs;
        ix->edim = pcs + 1;
        ix->mean = dn_alloc((size_t)dim, sizeof *ix->mean);
        ix->basis = dn_alloc((size_t)pcs * dim, sizeof *ix->basis);
        rc = ix->mean && ix->basis ? bank_mean(b->x, n, dim, ix->mean) : DN_ENOMEM;
    }
    if (!rc) {
        centre(b->x, ix->mean, n, dim, xc);
        rc = principal_basis(xc, n, dim, pcs, ix->basis);
    }
    if (!rc) {
        embed(ix, xc, n, dim, e);
        for (int i = 0; i < n; i++)
            rows[i] = i;
        kd_split(e, ix->edim, rows, n, tmp, sizes, &ix->nleaves);
        rc = layout_leaves(ix, e, rows, sizes);
    }
    free(xc);
    free(e);
    free(rows);
    free(sizes);
    free(tmp);
    if (rc)
        index_free(ix);
    else
        b->ix = ix;
    return rc;
}

/* Takes ownership of x (n x dim) and derives norms and the search structure. */
static int bank_adopt(dn_bank *b, float *x, int n, int dim, dn_error *err)
{
    dn_bank_free(b);
    b->x = x;
    b->n = n;
    b->dim = dim;
    b->sqnorm = dn_alloc((size_t)n, sizeof *b->sqnorm);
    int rc = b->sqnorm ? index_build(b) : DN_ENOMEM;
    if (rc) {
        dn_bank_free(b);
        return dn_error_set(err, rc, "memory bank of %d x %d: out of memory", n, dim);
    }
    for (int j = 0; j < n; j++)
        b->sqnorm[j] = sqnorm(x + (size_t)j * dim, dim);
    return DN_OK;
}

/* A NaN or infinity would poison the principal directions and every bound. */
static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

int dn_bank_from(dn_bank *b, const float *x, int n, int dim, dn_error *err)
{
    if (!b || !x || n < 1 || dim < 1)
        return dn_error_set(err, DN_EINVAL, "memory bank: bad arguments (n %d, dim %d)", n, dim);
    if (!all_finite(x, (size_t)n * dim))
        return dn_error_set(err, DN_EINVAL, "memory bank: a value is not a finite number");
    float *copy = dn_alloc((size_t)n * dim, sizeof *copy);
    if (!copy)
        return dn_error_set(err, DN_ENOMEM, "memory bank of %d x %d: out of memory", n, dim);
    memcpy(copy, x, (size_t)n * dim * sizeof *copy);
    return bank_adopt(b, copy, n, dim, err);
}

/* ---- queries ---- */

/* One query's search state. */
typedef struct dn_query {
    const float *q, *eq;
    float eqn;   /* (1 - slack) ||e(q)||^2 */
    float slack; /* absolute slack on its box bounds */
    float ub2;   /* exact squared distance of the best entry so far */
    int best;
    long evals;
} dn_query;

static int leaves_padded(const struct dn_bank_index *ix)
{
    return (ix->nleaves + V16 - 1) / V16 * V16;
}

/* Scratch of one call, carved from one block (see dn_bank_scratch_bytes). */
typedef struct dn_nn_scratch {
    float *qc;    /* qb x dim: centred queries, then residuals */
    float *eq;    /* qb x edim: their embeddings */
    struct dn_query *qs; /* qb: their search states */
    float *lb;    /* one leaf's bounds */
    float *bx;    /* qb x nleaves rounded up to 16: box bounds */
    int *dense;   /* qb: queries left to brute force */
    float *dq;    /* DN_BANK_DENSE_ROWS x dim: some of those, gathered */
    float *c;     /* DN_BANK_DENSE_ROWS x DN_BANK_BLOCK: their sgemm block */
    float *dmin;  /* DN_BANK_DENSE_ROWS: their best expanded distance so far */
    int *best;    /* qb: nearest rows when the caller wants no index */
} dn_nn_scratch;

/* The next bytes (rounded up to 64) of the scratch at base, which may be NULL when
 * only measuring. */
static void *carve(char *base, size_t *at, size_t bytes)
{
    void *p = base ? base + *at : NULL;
    *at += (bytes + 63) & ~(size_t)63;
    return p;
}

/* Lays out the scratch for blocks of qb queries at base; returns its size. */
static size_t scratch_layout(const dn_bank *b, int qb, char *base, dn_nn_scratch *s)
{
    const struct dn_bank_index *ix = b->ix;
    size_t at = 0, q = (size_t)qb, dim = (size_t)b->dim;
    s->qc = carve(base, &at, q * dim * sizeof *s->qc);
    s->eq = carve(base, &at, q * ix->edim * sizeof *s->eq);
    s->qs = carve(base, &at, q * sizeof *s->qs);
    s->lb = carve(base, &at, DN_BANK_LEAF * sizeof *s->lb);
    s->bx = carve(base, &at, q * leaves_padded(ix) * sizeof *s->bx);
    s->dense = carve(base, &at, q * sizeof *s->dense);
    s->best = carve(base, &at, q * sizeof *s->best);
    s->dq = carve(base, &at, DN_BANK_DENSE_ROWS * dim * sizeof *s->dq);
    s->c = carve(base, &at, (size_t)DN_BANK_DENSE_ROWS * DN_BANK_BLOCK * sizeof *s->c);
    s->dmin = carve(base, &at, DN_BANK_DENSE_ROWS * sizeof *s->dmin);
    return at;
}

size_t dn_bank_scratch_bytes(const dn_bank *b, int nq)
{
    dn_nn_scratch s;
    int qb = nq < DN_BANK_QUERY_BLOCK ? nq : DN_BANK_QUERY_BLOCK;
    return b && b->ix && nq > 0 ? scratch_layout(b, qb, NULL, &s) : 0;
}

/* Squared box bounds of one query against every leaf, into bx (padded to 16). */
DN_VECTOR_CLONES
static void box_bounds(const struct dn_bank_index *ix, const float *eq, float *bx)
{
    int edim = ix->edim;
    for (int g = 0; g < (ix->nleaves + V16 - 1) / V16; g++) {
        const float *lo = ix->box + (size_t)g * 2 * edim * V16, *hi = lo + edim * V16;
        dn_v16 acc = {0}, zero = {0};
        for (int k = 0; k < edim; k++) {
            dn_v16 below = v16_load(lo + k * V16) - eq[k], above = eq[k] - v16_load(hi + k * V16);
            dn_v16 gap = v16_min(v16_min(-below, -above), zero); /* -max(below, above, 0) */
            acc += gap * gap;
        }
        v16_store(bx + g * V16, acc);
    }
}

/* Index of the smallest of bx[0..n) (n a multiple of 16; the first on ties). */
DN_VECTOR_CLONES
static int min_index(const float *bx, int n)
{
    dn_v16 mn = v16_set(INFINITY);
    dn_m16 at = {0}, lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < n; i += V16) {
        dn_v16 v = v16_load(bx + i);
        dn_m16 lt = v < mn;
        at = (at & ~lt) | ((lane + i) & lt);
        mn = v16_min(mn, v);
    }
    int best = at[0];
    for (int t = 1; t < V16; t++)
        if (mn[t] < bx[best] || (mn[t] == bx[best] && at[t] < best))
            best = at[t];
    return best;
}

/* Squared lower bounds (minus slack) of one query against the entries of a leaf, into
 * lb (lane order); returns the smallest. Four partial sums per panel: one running sum
 * would chain edim dependent additions. */
DN_VECTOR_CLONES
static float leaf_bounds(const struct dn_bank_index *ix, const dn_leaf *lf, const float *eq,
                         float eqn, float *lb)
{
    int edim = ix->edim;
    dn_v16 mn = v16_set(INFINITY);
    for (int p = 0; p < lf->npanels; p++) {
        const float *pan = ix->pan + (size_t)(lf->panel + p) * edim * V16;
        dn_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        int k = 0;
        for (; k + 4 <= edim; k += 4) {
            a0 += v16_load(pan + k * V16) * eq[k];
            a1 += v16_load(pan + (k + 1) * V16) * eq[k + 1];
            a2 += v16_load(pan + (k + 2) * V16) * eq[k + 2];
            a3 += v16_load(pan + (k + 3) * V16) * eq[k + 3];
        }
        for (; k < edim; k++)
            a0 += v16_load(pan + k * V16) * eq[k];
        dn_v16 dot = (a0 + a1) + (a2 + a3);
        dn_v16 v = v16_load(ix->pesq + (size_t)(lf->panel + p) * V16) + eqn - (dot + dot);
        v16_store(lb + p * V16, v);
        mn = v16_min(mn, v);
    }
    return v16_hmin(mn);
}

DN_VECTOR_CLONES
static float exact_sqdist(const float *a, const float *b, int d)
{
    return sqdist(a, b, d);
}

static void try_entry(const dn_bank *b, dn_query *s, int row)
{
    float d2 = exact_sqdist(s->q, b->x + (size_t)row * b->dim, b->dim);
    s->evals++;
    if (d2 < s->ub2) {
        s->ub2 = d2;
        s->best = row;
    }
}

/* Exact distances for the entries of leaf l whose bound beats the best so far, the
 * smallest bound first so that the best tightens before the others are tested. */
static void search_leaf(const dn_bank *b, int l, dn_query *s, float *lb)
{
    const struct dn_bank_index *ix = b->ix;
    const dn_leaf *lf = &ix->leaves[l];
    float m = leaf_bounds(ix, lf, s->eq, s->eqn, lb);
    if (!(m < s->ub2))
        return;
    const int *rows = ix->prow + (size_t)lf->panel * V16;
    int lanes = lf->npanels * V16, first = 0;
    while (lb[first] != m)
        first++;
    try_entry(b, s, rows[first]);
    for (int t = 0; t < lanes; t++)
        if (lb[t] < s->ub2 && t != first)
            try_entry(b, s, rows[t]);
}

/* Whether leaf l, at squared box bound bx, might hold something nearer than the best. */
static int worth_visiting(const dn_query *s, float bx)
{
    return bx * (1.0f - DN_LB_SLACK) - s->slack < s->ub2;
}

/* Index of the smallest xn[j] + c[j] (the expanded squared distance minus ||q||^2). */
DN_VECTOR_CLONES
static int row_argmin(const float *c, const float *xn, int nb, float *minv)
{
    dn_v16 mn = v16_set(INFINITY);
    int j = 0;
    for (; j + V16 <= nb; j += V16)
        mn = v16_min(mn, v16_load(xn + j) + v16_load(c + j));
    float m = v16_hmin(mn);
    for (; j < nb; j++)
        m = xn[j] + c[j] < m ? xn[j] + c[j] : m;
    int at = 0;
    while (at < nb - 1 && xn[at] + c[at] != m)
        at++;
    *minv = m;
    return at;
}

/* Brute force for nd <= DN_BANK_DENSE_ROWS queries the bounds could not prune (rows
 * rows[] of q): sgemm against blocks of DN_BANK_BLOCK bank entries, then the winner's
 * exact distance. */
static void nearest_dense(const dn_bank *b, const float *q, const int *rows, int nd,
                          const dn_nn_scratch *sc, float *dist2, int *index)
{
    int dim = b->dim;
    for (int i = 0; i < nd; i++) {
        memcpy(sc->dq + (size_t)i * dim, q + (size_t)rows[i] * dim, (size_t)dim * sizeof *q);
        sc->dmin[i] = INFINITY;
    }
    for (int j0 = 0; j0 < b->n; j0 += DN_BANK_BLOCK) {
        int nb = b->n - j0 < DN_BANK_BLOCK ? b->n - j0 : DN_BANK_BLOCK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nd, nb, dim, -2.0f, sc->dq, dim,
                    b->x + (size_t)j0 * dim, dim, 0.0f, sc->c, nb);
        for (int i = 0; i < nd; i++) {
            float m;
            int j = row_argmin(sc->c + (size_t)i * nb, b->sqnorm + j0, nb, &m);
            if (m < sc->dmin[i]) {
                sc->dmin[i] = m;
                index[rows[i]] = j0 + j;
            }
        }
    }
    for (int i = 0; i < nd; i++)
        dist2[rows[i]] = exact_sqdist(q + (size_t)rows[i] * dim,
                                      b->x + (size_t)index[rows[i]] * dim, dim);
}

/* One block of at most DN_BANK_QUERY_BLOCK queries; dist gets squared distances.
 * Each query first searches the leaf whose box is nearest, which usually finds its
 * neighbour or one close to it; then the leaves are taken in turn, each by every query
 * it can still help, so that a leaf's panels are read into cache once per block rather
 * than once per query. */
static void nearest_block(const dn_bank *b, const float *q, int nq, float *dist2, int *index,
                          const dn_nn_scratch *sc)
{
    const struct dn_bank_index *ix = b->ix;
    int dim = b->dim, nd = 0, nlp = leaves_padded(ix);
    centre(q, ix->mean, nq, dim, sc->qc);
    embed(ix, sc->qc, nq, dim, sc->eq);
    /* Past this many exact distances pruning costs more than the sgemm would. */
    long budget = b->n / 32 + DN_BANK_LEAF;
    for (int i = 0; i < nq; i++) {
        dn_query *s = &sc->qs[i];
        float *bx = sc->bx + (size_t)i * nlp;
        s->q = q + (size_t)i * dim;
        s->eq = sc->eq + (size_t)i * ix->edim;
        s->eqn = (1.0f - DN_LB_SLACK) * sqnorm(s->eq, ix->edim);
        s->slack = DN_LB_SLACK * (s->eqn + ix->esq_max);
        s->ub2 = INFINITY;
        s->best = 0;
        s->evals = 0;
        box_bounds(ix, s->eq, bx);
        int first = min_index(bx, nlp);
        bx[first] = INFINITY;
        search_leaf(b, first, s, sc->lb);
    }
    for (int l = 0; l < ix->nleaves; l++)
        for (int i = 0; i < nq; i++) {
            dn_query *s = &sc->qs[i];
            if (s->evals <= budget && worth_visiting(s, sc->bx[(size_t)i * nlp + l]))
                search_leaf(b, l, s, sc->lb);
        }
    for (int i = 0; i < nq; i++) {
        if (sc->qs[i].evals > budget)
            sc->dense[nd++] = i;
        dist2[i] = sc->qs[i].ub2;
        index[i] = sc->qs[i].best;
    }
    for (int i = 0; i < nd; i += DN_BANK_DENSE_ROWS)
        nearest_dense(b, q, sc->dense + i, nd - i < DN_BANK_DENSE_ROWS ? nd - i : DN_BANK_DENSE_ROWS,
                      sc, dist2, index);
}

int dn_bank_nearest_scratch(const dn_bank *b, const float *q, int nq, float *dist, int *index,
                            void *scratch, dn_error *err)
{
    if (!b || !b->x || !b->ix || b->n < 1)
        return dn_error_set(err, DN_EINVAL, "nearest: empty memory bank");
    if (nq < 0 || (nq && (!q || !dist || !scratch)))
        return dn_error_set(err, DN_EINVAL, "nearest: bad arguments (%d queries)", nq);
    dn_nn_scratch sc;
    int qb = nq < DN_BANK_QUERY_BLOCK ? nq : DN_BANK_QUERY_BLOCK;
    scratch_layout(b, qb, scratch, &sc);
    for (int i0 = 0; i0 < nq; i0 += DN_BANK_QUERY_BLOCK) {
        int n = nq - i0 < DN_BANK_QUERY_BLOCK ? nq - i0 : DN_BANK_QUERY_BLOCK;
        nearest_block(b, q + (size_t)i0 * b->dim, n, dist + i0, index ? index + i0 : sc.best, &sc);
    }
    /* Sums of squares: no negative rounding residue to clamp. */
    for (int i = 0; i < nq; i++)
        dist[i] = sqrtf(dist[i]);
    return DN_OK;
}

int dn_bank_nearest(const dn_bank *b, const float *q, int nq, float *dist, int *index,
                    dn_error *err)
{
    size_t bytes = dn_bank_scratch_bytes(b, nq);
    void *scratch = bytes ? malloc(bytes) : NULL;
    if (bytes && !scratch)
        return dn_error_set(err, DN_ENOMEM, "nearest: out of memory (%zu bytes)", bytes);
    int rc = dn_bank_nearest_scratch(b, q, nq, dist, index, scratch, err);
    free(scratch);
    return rc;
}

/* ---------------------------------------------------------------------------------
 * Greedy k-centre coreset.
 *
 * The textbook loop updates a min-distance array of all n candidates per new centre:
 * 16384 x 250000 x 32 (projected) operations, a minute or more on one core. Most of
 * those updates cannot change anything. Candidates are kept grouped by their nearest
 * centre (a cluster; its radius is its largest distance), and by the triangle
 * inequality a new centre c can take a member p of cluster a only if
 * d(c, c_a) < 2 d(p, c_a): a cluster with d(c, c_a) >= 2 radius_a is skipped whole,
 * and as members are kept sorted by decreasing distance, a scan stops at the first one
 * that fails the test. The selection is exactly the textbook one (up to the order of
 * exactly equally far candidates); once clusters are small a new centre only visits
 * its neighbours. The next centre is the first member of the cluster of largest
 * radius.
 *
 * What remains is memory-bound (the rows of the scanned members), so the rows are
 * stored as bfloat16 (half the traffic; 250000 x 32 fits in L3) and renumbered in
 * cluster order now and then, so that a scan reads consecutive rows. */

/* bfloat16, the top half of a float rounded to nearest even: ~0.4% of each coordinate,
 * well below what the random projection already changes. Distances between rounded
 * points are still Euclidean, so the pruning stays exact for them. */
static uint16_t bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf16_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

typedef uint16_t dn_h16 __attribute__((vector_size(32), aligned(2)));
typedef uint32_t dn_w16 __attribute__((vector_size(64), aligned(4)));

/* ||a - b||^2 for a bf16 row a and a float row b, d a multiple of 16. */
DN_INLINE float sqdist_bf16(const uint16_t *a, const float *b, int d)
{
    dn_v16 acc = {0};
    for (int i = 0; i < d; i += V16) {
        dn_h16 h;
        memcpy(&h, a + i, sizeof h);
        dn_w16 w = __builtin_convertvector(h, dn_w16) << 16;
        dn_v16 t = (dn_v16)w - v16_load(b + i);
        acc += t * t;
    }
    return v16_sum(acc);
}

typedef struct dn_kcenter {
    uint16_t *p;     /* n rows of ps bf16 (ps % 16 == 0): the candidates as measured */
    size_t ps;
    int n, k;        /* candidates, centres so far */
    int repack_at;   /* k of the next renumbering */
    int *orig;       /* n: the caller's row of each row of p */
    int *srow;       /* cap slots: a row of p, one segment per cluster, in cluster order */
    float *smind;    /* cap slots: its squared distance to its cluster's centre */
    size_t cap, top; /* slots, and the first free one */
    size_t *seg;     /* per cluster: its first slot */
    int *len;        /* per cluster: its slots */
    float *rad;      /* per cluster: largest distance of a member (its first) */
    float *cen;      /* per centre: its ps floats */
    float *dcc;      /* per centre: squared distance to the newest centre */
    int *chosen;     /* per centre: the caller's row */
    unsigned char *done; /* n: renumbering work */
    uint16_t *spare; /* ps: renumbering work */
    struct dn_member *tmp; /* n: sorting work */
} dn_kcenter;

/* Moves the members of cluster a nearer to the newest centre into its segment; the
 * others close ranks. */
DN_VECTOR_CLONES
static void kc_scan(dn_kcenter *kc, int a)
{
    const float *c = kc->cen + (size_t)kc->k * kc->ps;
    int *row = kc->srow + kc->seg[a], stay = 0, i = 0, len = kc->len[a];
    float *mind = kc->smind + kc->seg[a], dcc = kc->dcc[a];
    for (; i < len && 4.0f * mind[i] > dcc; i++) {
        int p = row[i];
        /* Rows are only roughly consecutive: fetch a few members ahead. */
        if (i + 8 < len)
            __builtin_prefetch(kc->p + (size_t)row[i + 8] * kc->ps);
        float d = sqdist_bf16(kc->p + (size_t)p * kc->ps, c, (int)kc->ps);
        if (d < mind[i]) {
            kc->srow[kc->top] = p;
            kc->smind[kc->top++] = d;
            continue;
        }
        row[stay] = p;
        mind[stay++] = mind[i];
    }
    if (stay < i) {
        memmove(row + stay, row + i, (size_t)(len - i) * sizeof *row);
        memmove(mind + stay, mind + i, (size_t)(len - i) * sizeof *mind);
    }
    kc->len[a] = stay + len - i;
    kc->rad[a] = kc->len[a] ? mind[0] : 0;
}

/* Sort key of a member: decreasing distance, then the caller's row, so that ties never
 * depend on how rows were renumbered. */
typedef struct dn_member {
    float mind;
    int orig, row;
} dn_member;

static int member_cmp(const void *a, const void *b)
{
    const dn_member *x = a, *y = b;
    if (x->mind != y->mind)
        return x->mind > y->mind ? -1 : 1;
    return (x->orig > y->orig) - (x->orig < y->orig);
}

static void kc_sort(dn_kcenter *kc, int a)
{
    int *row = kc->srow + kc->seg[a], len = kc->len[a];
    float *mind = kc->smind + kc->seg[a];
    for (int i = 0; i < len; i++)
        kc->tmp[i] = (dn_member){mind[i], kc->orig[row[i]], row[i]};
    qsort(kc->tmp, (size_t)len, sizeof *kc->tmp, member_cmp);
    for (int i = 0; i < len; i++) {
        mind[i] = kc->tmp[i].mind;
        row[i] = kc->tmp[i].row;
    }
    kc->rad[a] = len ? mind[0] : 0;
}

/* dcc[a] for every earlier centre a. */
DN_VECTOR_CLONES
static void kc_centre_dists(dn_kcenter *kc)
{
    const float *c = kc->cen + (size_t)kc->k * kc->ps;
    for (int a = 0; a < kc->k; a++)
        kc->dcc[a] = sqdist(kc->cen + (size_t)a * kc->ps, c, (int)kc->ps);
}

/* Squeezes the holes left by members that moved out of the slots (the segments lie in
 * cluster order, so moving each down in that order overwrites nothing live), then
 * renumbers the rows of p in slot order. Row order only breaks ties of the sort, and
 * those go by candidate row, so renumbering never changes the selection. */
static void kc_repack(dn_kcenter *kc)
{
    size_t at = 0, rowb = kc->ps * sizeof *kc->p;
    for (int a = 0; a < kc->k; a++) {
        memmove(kc->srow + at, kc->srow + kc->seg[a], (size_t)kc->len[a] * sizeof *kc->srow);
        memmove(kc->smind + at, kc->smind + kc->seg[a], (size_t)kc->len[a] * sizeof *kc->smind);
        kc->seg[a] = at;
        at += (size_t)kc->len[a];
    }
    kc->top = at;
    int n = kc->n, *src = kc->srow; /* row i of the new p is row src[i] of the old one */
    memset(kc->done, 0, (size_t)n);
    /* Gather by cycles, in place: each row is read before it is overwritten. */
    for (int i = 0; i < n; i++) {
        if (kc->done[i])
            continue;
        int o = kc->orig[i], j = i;
        memcpy(kc->spare, kc->p + (size_t)i * kc->ps, rowb);
        while (src[j] != i) {
            memcpy(kc->p + (size_t)j * kc->ps, kc->p + (size_t)src[j] * kc->ps, rowb);
            kc->orig[j] = kc->orig[src[j]];
            kc->done[j] = 1;
            j = src[j];
        }
        memcpy(kc->p + (size_t)j * kc->ps, kc->spare, rowb);
        kc->orig[j] = o;
        kc->done[j] = 1;
    }
    for (int i = 0; i < n; i++)
        src[i] = i;
}

/* Makes row the centre of a new cluster kc->k, with no members yet. */
static void kc_open(dn_kcenter *kc, int row)
{
    int k = kc->k;
    kc->chosen[k] = kc->orig[row];
    for (size_t t = 0; t < kc->ps; t++)
        kc->cen[(size_t)k * kc->ps + t] = bf16_float(kc->p[(size_t)row * kc->ps + t]);
    kc->seg[k] = kc->top;
}

/* Adds the candidate farthest from the centres; 0 when every candidate duplicates one. */
static int kc_add(dn_kcenter *kc)
{
    int a = 0, k = kc->k;
    for (int i = 1; i < k; i++)
        a = kc->rad[i] > kc->rad[a] ? i : a;
    if (!(kc->rad[a] > 0))
        return 0;
    /* Renumber when the slots might not hold this round's moves, and every 1/16 growth
     * of k (about 90 times for 16384 centres) to keep clusters in consecutive rows. */
    if (kc->cap - kc->top < (size_t)kc->n || k >= kc->repack_at) {
        kc_repack(kc);
        kc->repack_at = k + k / 16;
    }
    kc_open(kc, kc->srow[kc->seg[a]]);
    kc_centre_dists(kc);
    for (int i = 0; i < k; i++)
        if (kc->dcc[i] < 4.0f * kc->rad[i])
            kc_scan(kc, i);
    kc->len[k] = (int)(kc->top - kc->seg[k]);
    kc_sort(kc, k);
    kc->k++;
    return 1;
}

/* The first centre: every candidate is its member. */
static void kc_first(dn_kcenter *kc, int row)
{
    kc_open(kc, row);
    for (int i = 0; i < kc->n; i++) {
        kc->srow[i] = i;
        kc->smind[i] = sqdist_bf16(kc->p + (size_t)i * kc->ps, kc->cen, (int)kc->ps);
    }
    kc->len[0] = kc->n;
    kc->top = (size_t)kc->n;
    kc_sort(kc, 0);
    kc->k = 1;
    kc->repack_at = 64;
}

static void kc_free(dn_kcenter *kc)
{
    free(kc->p);
    free(kc->orig);
    free(kc->srow);
    free(kc->smind);
    free(kc->seg);
    free(kc->len);
    free(kc->rad);
    free(kc->cen);
    free(kc->dcc);
    free(kc->chosen);
    free(kc->done);
    free(kc->spare);
    free(kc->tmp);
}

static int kc_alloc(dn_kcenter *kc, int m)
{
    kc->cap = (size_t)3 * kc->n;
    kc->orig = dn_alloc((size_t)kc->n, sizeof *kc->orig);
    kc->srow = dn_alloc(kc->cap, sizeof *kc->srow);
    kc->smind = dn_alloc(kc->cap, sizeof *kc->smind);
    kc->seg = dn_alloc((size_t)m, sizeof *kc->seg);
    kc->len = dn_alloc((size_t)m, sizeof *kc->len);
    kc->rad = dn_alloc((size_t)m, sizeof *kc->rad);
    kc->cen = dn_alloc((size_t)m * kc->ps, sizeof *kc->cen);
    kc->dcc = dn_alloc((size_t)m, sizeof *kc->dcc);
    kc->chosen = dn_alloc((size_t)m, sizeof *kc->chosen);
    kc->done = dn_alloc((size_t)kc->n, sizeof *kc->done);
    kc->spare = dn_alloc(kc->ps, sizeof *kc->spare);
    kc->tmp = dn_alloc((size_t)kc->n, sizeof *kc->tmp);
    if (!kc->orig || !kc->srow || !kc->smind || !kc->seg || !kc->len || !kc->rad || !kc->cen ||
        !kc->dcc || !kc->chosen || !kc->done || !kc->spare || !kc->tmp)
        return DN_ENOMEM;
    for (int i = 0; i < kc->n; i++)
        kc->orig[i] = i;
    return DN_OK;
}

/* Standard normal deviate (Box-Muller; one of the pair is enough here). */
static float gaussian(uint64_t *s)
{
    double u = uniform01(s), v = uniform01(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Rows projected through r (dim x d) a block at a time, so the float product stays
 * small, and rounded into p (rows of ps). */
static int project_bf16(const float *x, int n, int dim, const float *r, int d, uint16_t *p,
                        size_t ps)
{
    enum { ROWS = 1024 };
    float *buf = dn_alloc((size_t)ROWS * d, sizeof *buf);
    if (!buf)
        return DN_ENOMEM;
    for (int i0 = 0; i0 < n; i0 += ROWS) {
        int m = n - i0 < ROWS ? n - i0 : ROWS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, dim, 1.0f,
                    x + (size_t)i0 * dim, dim, r, d, 0.0f, buf, d);
        for (int i = 0; i < m; i++)
            for (int t = 0; t < d; t++)
                p[(size_t)(i0 + i) * ps + t] = bf16_round(buf[(size_t)i * d + t]);
    }
    free(buf);
    return DN_OK;
}

/* The candidates as the selection measures them, in zero-padded bf16 rows of ps (a
 * multiple of 16): projected on proj_dim Gaussian directions (scaled 1/sqrt(proj_dim),
 * so that distances keep their size) when 0 < proj_dim < dim, else as they are. */
static uint16_t *selection_space(const float *x, int n, int dim, int proj_dim, uint64_t *s,
                                 size_t *ps)
{
    int d = proj_dim > 0 && proj_dim < dim ? proj_dim : dim;
    *ps = ((size_t)d + V16 - 1) / V16 * V16;
    uint16_t *p = calloc((size_t)n * *ps, sizeof *p);
    if (!p || d == dim) {
        for (size_t i = 0; p && i < (size_t)n; i++)
            for (int t = 0; t < dim; t++)
                p[i * *ps + t] = bf16_round(x[i * dim + t]);
        return p;
    }
    float *r = dn_alloc((size_t)dim * d, sizeof *r);
    float scale = 1.0f / sqrtf((float)d);
    for (size_t i = 0; r && i < (size_t)dim * d; i++)
        r[i] = gaussian(s) * scale;
    if (!r || project_bf16(x, n, dim, r, d, p, *ps)) {
        free(p);
        p = NULL;
    }
    free(r);
    return p;
}

/* Rows of the greedy k-centre selection of m among the n candidates, into chosen;
 * returns how many (fewer than m once only duplicates are left), -1 on no memory. */
static int kcenter_select(const float *x, int n, int dim, int m, int proj_dim, uint64_t seed,
                          int *chosen)
{
    uint64_t s = seed;
    int first = (int)(splitmix64(&s) % (uint64_t)n), k = -1;
    dn_kcenter kc = {0};
    kc.n = n;
    kc.p = selection_space(x, n, dim, proj_dim, &s, &kc.ps);
    if (kc.p && kc_alloc(&kc, m) == DN_OK) {
        kc_first(&kc, first);
        while (kc.k < m && kc_add(&kc))
            ;
        k = kc.k;
        memcpy(chosen, kc.chosen, (size_t)k * sizeof *chosen);
    }
    kc_free(&kc);
    return k;
}

int dn_bank_build(dn_bank *b, const float *patches, size_t n, int dim, int max_size,
                  int proj_dim, uint64_t seed, dn_error *err)
{
    if (!b || !patches || n < 1 || dim < 1 || max_size < 1 || proj_dim < 0)
        return dn_error_set(err, DN_EINVAL,
                            "memory bank: bad arguments (n %zu, dim %d, max %d, proj %d)", n, dim,
                            max_size, proj_dim);
    if (n > INT_MAX)
        return dn_error_set(err, DN_ETOOBIG, "memory bank: %zu candidates, at most %d", n,
                            INT_MAX);
    if (n <= (size_t)max_size)
        return dn_bank_from(b, patches, (int)n, dim, err);
    if (!all_finite(patches, n * dim))
        return dn_error_set(err, DN_EINVAL, "memory bank: a candidate is not finite");
    int *chosen = dn_alloc((size_t)max_size, sizeof *chosen);
    int k = chosen ? kcenter_select(patches, (int)n, dim, max_size, proj_dim, seed, chosen) : -1;
    float *x = k > 0 ? dn_alloc((size_t)k * dim, sizeof *x) : NULL;
    if (!x) {
        free(chosen);
        return dn_error_set(err, DN_ENOMEM, "coreset of %d from %zu x %d: out of memory",
                            max_size, n, dim);
    }
    for (int i = 0; i < k; i++)
        memcpy(x + (size_t)i * dim, patches + (size_t)chosen[i] * dim, (size_t)dim * sizeof *x);
    free(chosen);
    return bank_adopt(b, x, k, dim, err);
}
