#include "dn_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(size_t) >= 8, "pixel counts and key arrays need a 64-bit size_t");

/* ---- order-preserving keys and their radix sort ----
 *
 * A float's bits, with the sign bit flipped for positives and every bit flipped for
 * negatives, compare as unsigned integers the way the floats compare. Sorting these keys
 * by radix is linear and needs no comparator calls, which matters at 20 million pixels. */

static uint32_t mt_key(float f)
{
    if (isnan(f))
        f = -INFINITY; /* see the header: NaN ranks as -inf */
    if (f == 0.0f)
        f = 0.0f; /* -0.0 would get a key of its own below +0.0 */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static float mt_float(uint32_t k)
{
    uint32_t u = k & 0x80000000u ? k & 0x7fffffffu : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define MT_DIGIT_BITS 8
#define MT_BUCKETS    (1u << MT_DIGIT_BITS)
#define MT_PASSES     (32 / MT_DIGIT_BITS)

/* Sorts a[0..n) ascending, tmp (n keys) as scratch: LSD radix, one histogram pass for all
 * digits, and a digit on which every key agrees (the exponent's top bits, usually) is
 * skipped. */
static void mt_sort_keys(uint32_t *a, uint32_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t hist[MT_PASSES][MT_BUCKETS] = {{0}};
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < MT_PASSES; p++)
            hist[p][(a[i] >> (p * MT_DIGIT_BITS)) & (MT_BUCKETS - 1)]++;
    uint32_t *src = a, *dst = tmp;
    for (int p = 0; p < MT_PASSES; p++) {
        unsigned shift = (unsigned)p * MT_DIGIT_BITS;
        size_t *h = hist[p];
        if (h[(src[0] >> shift) & (MT_BUCKETS - 1)] == n)
            continue;
        size_t sum = 0;
        for (unsigned b = 0; b < MT_BUCKETS; b++) {
            size_t c = h[b];
            h[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t k = src[i];
            dst[h[(k >> shift) & (MT_BUCKETS - 1)]++] = k;
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

/* ---- computations on the two sorted key arrays ---- */

/* 2U of Mann-Whitney over n_pos * n_neg: for each group of equal positives, the
 * negatives below count 2 each and the equal ones 1 each. One merge walk. */
static double mt_auroc_sorted(const uint32_t *pos, size_t np, const uint32_t *neg, size_t nn)
{
    if (np == 0 || nn == 0)
        return NAN;
    uint64_t u2 = 0;
    size_t i = 0, j = 0;
    while (i < np) {
        uint32_t v = pos[i];
        size_t c = 1, e = 0;
        while (i + c < np && pos[i + c] == v)
            c++;
        while (j < nn && neg[j] < v)
            j++;
        while (j + e < nn && neg[j + e] == v)
            e++;
        u2 += (uint64_t)c * (2 * (uint64_t)j + e);
        i += c;
        j += e;
    }
    return (double)u2 / (2.0 * (double)np * (double)nn);
}

/* Walks the distinct scores from the highest down, as the cut "score >= v" lowers. */
typedef struct mt_walk {
    const uint32_t *pos, *neg;
    size_t i, j;         /* keys not yet passed: pos[0..i), neg[0..j) */
    uint64_t tp, fp;     /* at the current cut */
    uint64_t step_pos;   /* positives the last step added */
    uint32_t v;          /* the current cut's key */
} mt_walk;

static void mt_walk_init(mt_walk *w, const uint32_t *pos, size_t np, const uint32_t *neg,
                         size_t nn)
{
    *w = (mt_walk){.pos = pos, .neg = neg, .i = np, .j = nn};
}

static int mt_walk_more(const mt_walk *w) { return w->i > 0 || w->j > 0; }

/* Next lower distinct key; only while mt_walk_more. */
static uint32_t mt_walk_peek(const mt_walk *w)
{
    uint32_t v = w->i ? w->pos[w->i - 1] : 0;
    if (w->j && (!w->i || w->neg[w->j - 1] > v))
        v = w->neg[w->j - 1];
    return v;
}

static void mt_walk_step(mt_walk *w)
{
    uint32_t v = mt_walk_peek(w);
    size_t i0 = w->i;
    while (w->i && w->pos[w->i - 1] == v)
        w->i--;
    while (w->j && w->neg[w->j - 1] == v) {
        w->j--;
        w->fp++;
    }
    w->step_pos = i0 - w->i;
    w->tp += w->step_pos;
    w->v = v;
}

static double mt_ap_sorted(const uint32_t *pos, size_t np, const uint32_t *neg, size_t nn)
{
    if (np == 0 || nn == 0)
        return NAN;
    mt_walk w;
    mt_walk_init(&w, pos, np, neg, nn);
    double ap = 0;
    /* Recall stops rising with the last positive; lower cuts add nothing. */
    while (w.i > 0) {
        mt_walk_step(&w);
        if (w.step_pos)
            ap += (double)w.step_pos / (double)np * ((double)w.tp / (double)(w.tp + w.fp));
    }
    return ap;
}

/* A threshold strictly above lower and at most v: their midpoint unless rounding to float
 * (or an infinity) lands it on lower, in which case v itself. */
static float mt_between(float lower, float v)
{
    float t = (float)(((double)lower + (double)v) / 2);
    return t > lower ? t : v;
}

static float mt_f1_sorted(const uint32_t *pos, size_t np, const uint32_t *neg, size_t nn,
                          double *best_f1)
{
    double best = NAN;
    float thr = NAN;
    if (np > 0) {
        mt_walk w;
        mt_walk_init(&w, pos, np, neg, nn);
        best = -1;
        /* F1 = 2TP / (2TP + FP + FN) = 2TP / (TP + FP + P); after the last positive,
         * lower cuts only add false positives. */
        while (w.i > 0) {
            mt_walk_step(&w);
            double f1 = 2.0 * (double)w.tp / (double)(w.tp + w.fp + np);
            if (f1 > best) {
                best = f1;
                float v = mt_float(w.v);
                thr = mt_walk_more(&w) ? mt_between(mt_float(mt_walk_peek(&w)), v) : v;
            }
        }
    }
    if (best_f1)
        *best_f1 = best;
    return thr;
}

/* ---- image-level entry points: split by class, sort, compute ---- */

typedef struct mt_split {
    uint32_t *buf; /* 2n keys: positives, negatives, then scratch */
    size_t np, nn;
} mt_split;

static int mt_split_sort(mt_split *s, const float *scores, const uint8_t *labels, size_t n)
{
    s->np = s->nn = 0;
    s->buf = NULL;
    if ((uint64_t)n > DN_AUROC_MAX_VALUES || !(s->buf = malloc(2 * (n ? n : 1) * sizeof *s->buf)))
        return -1;
    for (size_t i = 0; i < n; i++)
        s->np += labels[i] != 0;
    s->nn = n - s->np;
    size_t p = 0, q = s->np;
    for (size_t i = 0; i < n; i++)
        s->buf[labels[i] ? p++ : q++] = mt_key(scores[i]);
    mt_sort_keys(s->buf, s->buf + n, s->np);
    mt_sort_keys(s->buf + s->np, s->buf + n, s->nn);
    return 0;
}

/* Splits by class, sorts, and applies a metric of the two sorted key arrays. */
static double split_metric(const float *scores, const uint8_t *labels, size_t n,
                           double (*metric)(const uint32_t *, size_t, const uint32_t *, size_t))
{
    mt_split s;
    if (mt_split_sort(&s, scores, labels, n))
        return NAN;
    double r = metric(s.buf, s.np, s.buf + s.np, s.nn);
    free(s.buf);
    return r;
}

double dn_auroc(const float *scores, const uint8_t *labels, size_t n)
{
    return split_metric(scores, labels, n, mt_auroc_sorted);
}

double dn_aupr(const float *scores, const uint8_t *labels, size_t n)
{
    return split_metric(scores, labels, n, mt_ap_sorted);
}

float dn_max_f1_threshold(const float *scores, const uint8_t *labels, size_t n, double *best_f1)
{
    mt_split s;
    if (mt_split_sort(&s, scores, labels, n)) {
        if (best_f1)
            *best_f1 = NAN;
        return NAN;
    }
    float t = mt_f1_sorted(s.buf, s.np, s.buf + s.np, s.nn, best_f1);
    free(s.buf);
    return t;
}

/* ---- pooled pixel accumulator ---- */

void dn_auroc_acc_init(dn_auroc_acc *a) { memset(a, 0, sizeof *a); }

void dn_auroc_acc_free(dn_auroc_acc *a)
{
    free(a->pos);
    free(a->neg);
    dn_auroc_acc_init(a);
}

/* Room for need keys in *v; doubling keeps appends amortised linear. */
static int mt_reserve(uint32_t **v, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    uint32_t *p = realloc(*v, c * sizeof *p);
    if (!p)
        return -1;
    *v = p;
    *cap = c;
    return 0;
}

int dn_auroc_acc_add(dn_auroc_acc *a, const float *scores, const uint8_t *mask, size_t n,
                     dn_error *err)
{
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(scores[i]))
            return dn_error_set(err, DN_EINVAL, "score %zu of %zu is NaN", i, n);
        np += mask[i] != 0;
    }
    uint64_t have = (uint64_t)a->n_pos + a->n_neg;
    if ((uint64_t)n > DN_AUROC_MAX_VALUES - have)
        return dn_error_set(err, DN_ETOOBIG,
                            "pixel AUROC over %llu scores (at most %llu can be ranked)",
                            (unsigned long long)(have + n),
                            (unsigned long long)DN_AUROC_MAX_VALUES);
    if (mt_reserve(&a->pos, &a->cap_pos, a->n_pos + np) ||
        mt_reserve(&a->neg, &a->cap_neg, a->n_neg + (n - np)))
        return dn_error_set(err, DN_ENOMEM, "no memory for %llu pixel scores",
                            (unsigned long long)(have + n));
    uint32_t *p = a->pos + a->n_pos, *q = a->neg + a->n_neg;
    for (size_t i = 0; i < n; i++) {
        if (mask[i])
            *p++ = mt_key(scores[i]);
        else
            *q++ = mt_key(scores[i]);
    }
    a->n_pos += np;
    a->n_neg += n - np;
    return DN_OK;
}

double dn_auroc_acc_result(dn_auroc_acc *a)
{
    if (a->n_pos == 0 || a->n_neg == 0)
        return NAN;
    uint32_t *tmp = malloc((a->n_pos > a->n_neg ? a->n_pos : a->n_neg) * sizeof *tmp);
    if (!tmp)
        return NAN;
    /* Sorting in place leaves the keys sorted; later adds append and the next result
     * sorts again (radix sort does not care that most of the input is in order). */
    mt_sort_keys(a->pos, tmp, a->n_pos);
    mt_sort_keys(a->neg, tmp, a->n_neg);
    free(tmp);
    return mt_auroc_sorted(a->pos, a->n_pos, a->neg, a->n_neg);
}

/* ---- thresholds and calibration ---- */

double dn_average(const float *x, size_t n)
{
    if (n == 0)
        return NAN;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

/* Two passes (mean, then squared deviations): the one-pass formula cancels badly when
 * the mean is large against the spread, as with scores far from zero. */
double dn_std(const float *x, size_t n)
{
    double m = dn_average(x, n), s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)x[i] - m) * ((double)x[i] - m);
    return n ? sqrt(s / (double)n) : NAN;
}

float dn_quantile(const float *x, size_t n, double q)
{
    if (n == 0 || !(q >= 0 && q <= 1) || n > SIZE_MAX / (2 * sizeof(uint32_t)))
        return NAN;
    uint32_t *k = malloc(2 * n * sizeof *k);
    if (!k)
        return NAN;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            free(k);
            return NAN;
        }
        k[i] = mt_key(x[i]);
    }
    mt_sort_keys(k, k + n, n);
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)h;
    double frac = h - (double)lo;
    float a = mt_float(k[lo]);
    /* frac > 0 implies lo < n - 1; frac == 0 is returned as is so that an infinity does
     * not meet 0 * inf. */
    float r = frac > 0 ? (float)(a + frac * ((double)mt_float(k[lo + 1]) - a)) : a;
    free(k);
    return r;
}

double dn_conformal_p(const float *cal_sorted, size_t n, float s)
{
    if (isnan(s))
        return NAN;
    size_t lo = 0, hi = n; /* first index with cal >= s */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cal_sorted[mid] < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (double)(1 + (n - lo)) / (double)(n + 1);
}
