/* Metrics against hand-computed cases and against naive definitions written here from
 * scratch (O(n^2) pairwise AUROC, per-threshold AP and F1), on random data with many
 * ties, signed zeros, infinities and NaN. */
#include "test_util.h"

#include "dn_metrics.h"

#include <math.h>

#define EPS 1e-12

/* ---- naive references ---- */

/* The ranking convention of dn_metrics.h: NaN is -inf. */
static float rank_of(float f) { return isnan(f) ? -INFINITY : f; }

static double ref_auroc(const float *s, const uint8_t *l, size_t n)
{
    double u = 0, np = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        np += l[i] != 0;
        nn += l[i] == 0;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (l[i] && !l[j])
                u += rank_of(s[i]) > rank_of(s[j]) ? 1 : rank_of(s[i]) == rank_of(s[j]) ? 0.5 : 0;
    return np && nn ? u / (np * nn) : NAN;
}

static int desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Distinct ranked scores, highest first; returns their count. */
static size_t distinct_desc(const float *s, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = rank_of(s[i]);
    qsort(out, n, sizeof *out, desc);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || out[i] != out[m - 1])
            out[m++] = out[i];
    return m;
}

static void count_at(const float *s, const uint8_t *l, size_t n, float t, double *tp, double *fp)
{
    *tp = *fp = 0;
    for (size_t i = 0; i < n; i++)
        if (rank_of(s[i]) >= t)
            *(l[i] ? tp : fp) += 1;
}

static double ref_ap(const float *s, const uint8_t *l, size_t n)
{
    double np = 0;
    for (size_t i = 0; i < n; i++)
        np += l[i] != 0;
    if (np == 0 || np == (double)n)
        return NAN;
    float *t = malloc(n * sizeof *t);
    size_t m = distinct_desc(s, n, t);
    double ap = 0, prev_r = 0, tp, fp;
    for (size_t k = 0; k < m; k++) {
        count_at(s, l, n, t[k], &tp, &fp);
        ap += (tp / np - prev_r) * (tp / (tp + fp));
        prev_r = tp / np;
    }
    free(t);
    return ap;
}

static double ref_best_f1(const float *s, const uint8_t *l, size_t n)
{
    double np = 0, best = 0, tp, fp;
    for (size_t i = 0; i < n; i++)
        np += l[i] != 0;
    float *t = malloc(n * sizeof *t);
    size_t m = distinct_desc(s, n, t);
    for (size_t k = 0; k < m; k++) {
        count_at(s, l, n, t[k], &tp, &fp);
        best = fmax(best, 2 * tp / (tp + fp + np));
    }
    free(t);
    return best;
}

/* F1 of "score >= t is anomalous", computed directly. */
static double f1_at(const float *s, const uint8_t *l, size_t n, float t)
{
    double np = 0, tp, fp;
    for (size_t i = 0; i < n; i++)
        np += l[i] != 0;
    count_at(s, l, n, t, &tp, &fp);
    return 2 * tp / (tp + fp + np);
}

/* Scores on a few levels (ties within and across classes), with -0.0 next to +0.0 and
 * the odd infinity or NaN. */
static void rand_tied(uint64_t *seed, float *s, uint8_t *l, size_t n, int levels, int pos_pct)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t r = dn_test_rand(seed);
        int lev = (int)(r % (uint32_t)levels) - levels / 2;
        s[i] = (float)lev * 0.25f;
        if (lev == 0 && (r >> 16) & 1)
            s[i] = -0.0f;
        if ((r >> 20) % 97 == 0)
            s[i] = (r >> 28) & 1 ? INFINITY : -INFINITY;
        if ((r >> 20) % 89 == 0)
            s[i] = NAN;
        l[i] = (int)(dn_test_rand(seed) % 100) < pos_pct ? ((r >> 8) & 1 ? 1 : 255) : 0;
    }
}

/* Any non-NaN float: random bits, so every byte of the sort keys varies. */
static float rand_any(uint64_t *seed)
{
    for (;;) {
        uint32_t u = dn_test_rand(seed);
        float f;
        memcpy(&f, &u, sizeof f);
        if (!isnan(f))
            return f;
    }
}

/* ---- hand cases ---- */

Test(metrics, auroc_aupr_hand_case)
{
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t l[] = {0, 0, 1, 1};
    /* Pairs: 0.35 beats 0.1 only, 0.8 beats both: 3 of 4. AP: 0.8 gives P=1 at R=1/2,
     * 0.35 gives P=2/3 at R=1: 1/2 + 1/3. */
    cr_assert_float_eq(dn_auroc(s, l, 4), 0.75, EPS, "auroc %g", dn_auroc(s, l, 4));
    cr_assert_float_eq(dn_aupr(s, l, 4), 5.0 / 6, EPS, "ap %g", dn_aupr(s, l, 4));
}

Test(metrics, perfect_inverted_and_all_tied)
{
    const float s[] = {4, 3, 2, 1, 0};
    const uint8_t top[] = {1, 1, 0, 0, 0}, bottom[] = {0, 0, 0, 1, 1};
    cr_assert_float_eq(dn_auroc(s, top, 5), 1.0, EPS);
    cr_assert_float_eq(dn_aupr(s, top, 5), 1.0, EPS);
    cr_assert_float_eq(dn_auroc(s, bottom, 5), 0.0, EPS);
    /* Positives at ranks 4 and 5: 1/2 * 1/4 + 1/2 * 2/5. */
    cr_assert_float_eq(dn_aupr(s, bottom, 5), 0.125 + 0.2, EPS, "ap %g", dn_aupr(s, bottom, 5));

    const float tied[] = {7, 7, 7, 7, 7};
    /* One threshold: everything is flagged, precision 2/5 at recall 1. */
    cr_assert_float_eq(dn_auroc(tied, top, 5), 0.5, EPS);
    cr_assert_float_eq(dn_aupr(tied, top, 5), 0.4, EPS);
}

Test(metrics, ties_across_classes)
{
    const float s[] = {0.2f, 0.5f, 0.5f, 0.5f, 0.9f};
    const uint8_t l[] = {0, 1, 0, 0, 1};
    /* Positive 0.5: beats 0.2, ties two -> 2; positive 0.9 beats all three -> 3; of 6.
     * AP: 0.9 -> P=1 at R=1/2; 0.5 -> tp 2, fp 2 -> P=1/2 at R=1. */
    cr_assert_float_eq(dn_auroc(s, l, 5), 5.0 / 6, EPS, "auroc %g", dn_auroc(s, l, 5));
    cr_assert_float_eq(dn_aupr(s, l, 5), 0.75, EPS, "ap %g", dn_aupr(s, l, 5));
}

Test(metrics, signed_zero_nan_and_nonzero_labels)
{
    const float z[] = {-0.0f, 0.0f};
    const uint8_t l[] = {1, 0}, l255[] = {255, 0};
    cr_assert_float_eq(dn_auroc(z, l, 2), 0.5, EPS, "-0 and +0 must tie");
    const float nan_low[] = {NAN, -1e30f};
    cr_assert_float_eq(dn_auroc(nan_low, l, 2), 0.0, EPS, "NaN ranks below every number");
    const float nan_inf[] = {NAN, -INFINITY};
    cr_assert_float_eq(dn_auroc(nan_inf, l, 2), 0.5, EPS, "NaN ties with -inf");
    const float s[] = {2, 1};
    cr_assert_float_eq(dn_auroc(s, l255, 2), 1.0, EPS, "label 255 is an anomaly");
}

Test(metrics, empty_class_is_nan)
{
    const float s[] = {1, 2, 3};
    const uint8_t zeros[] = {0, 0, 0}, ones[] = {1, 1, 1};
    cr_assert(isnan(dn_auroc(s, zeros, 3)));
    cr_assert(isnan(dn_auroc(s, ones, 3)));
    cr_assert(isnan(dn_aupr(s, zeros, 3)));
    cr_assert(isnan(dn_aupr(s, ones, 3)));
    cr_assert(isnan(dn_auroc(s, ones, 0)));
    cr_assert(isnan(dn_aupr(NULL, NULL, 0)));

    dn_auroc_acc a;
    dn_auroc_acc_init(&a);
    cr_assert(isnan(dn_auroc_acc_result(&a)));
    cr_assert_eq(dn_auroc_acc_add(&a, s, zeros, 3, NULL), DN_OK);
    cr_assert(isnan(dn_auroc_acc_result(&a)), "normals only");
    cr_assert_eq(dn_auroc_acc_add(&a, s, ones, 1, NULL), DN_OK);
    cr_assert(!isnan(dn_auroc_acc_result(&a)), "both classes now");
    dn_auroc_acc_free(&a);
    dn_auroc_acc_free(&a);
}

/* ---- against the naive definitions ---- */

Test(metrics, random_ties_match_naive)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    static const size_t sizes[] = {1, 2, 3, 7, 50, 333, 2000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        for (int levels = 1; levels <= 9; levels += 4)
            for (int pct = 5; pct <= 95; pct += 45) {
                size_t n = sizes[k];
                float *s = malloc(n * sizeof *s);
                uint8_t *l = malloc(n);
                rand_tied(&seed, s, l, n, levels, pct);
                double a = dn_auroc(s, l, n), ra = ref_auroc(s, l, n);
                double p = dn_aupr(s, l, n), rp = ref_ap(s, l, n);
                cr_assert(isnan(a) == isnan(ra), "n=%zu: auroc %g, naive %g", n, a, ra);
                cr_assert(isnan(p) == isnan(rp), "n=%zu: ap %g, naive %g", n, p, rp);
                if (!isnan(ra)) {
                    cr_assert_float_eq(a, ra, 1e-12, "n=%zu L=%d: auroc %.15g, naive %.15g", n,
                                       levels, a, ra);
                    cr_assert_float_eq(p, rp, 1e-12, "n=%zu L=%d: ap %.15g, naive %.15g", n,
                                       levels, p, rp);
                }
                free(s);
                free(l);
            }
}

/* Random bit patterns: every digit of the radix sort sees every value, signs mixed. */
Test(metrics, full_range_floats_match_naive)
{
    uint64_t seed = 12345;
    size_t n = 3000;
    float *s = malloc(n * sizeof *s);
    uint8_t *l = malloc(n);
    for (size_t i = 0; i < n; i++) {
        s[i] = rand_any(&seed);
        l[i] = dn_test_rand(&seed) % 3 == 0;
        if (i % 50 == 0 && i)
            s[i] = s[i - 1]; /* and some ties */
    }
    double a = dn_auroc(s, l, n), ra = ref_auroc(s, l, n);
    cr_assert_float_eq(a, ra, 1e-12, "auroc %.15g, naive %.15g", a, ra);
    double p = dn_aupr(s, l, n), rp = ref_ap(s, l, n);
    cr_assert_float_eq(p, rp, 1e-12, "ap %.15g, naive %.15g", p, rp);
    free(s);
    free(l);
}

/* ---- pooled pixel accumulator ---- */

Test(metrics, accumulator_equals_auroc_of_concatenation)
{
    uint64_t seed = 777;
    size_t cap = 40 * 300, total = 0;
    float *all = malloc(cap * sizeof *all);
    uint8_t *mask = malloc(cap);
    dn_auroc_acc a;
    dn_auroc_acc_init(&a);
    for (int img = 0; img < 40; img++) {
        size_t n = dn_test_rand(&seed) % 300; /* 0 happens: an empty add is fine */
        for (size_t i = 0; i < n; i++) {
            /* Full-range values on some images, tied levels on others. */
            all[total + i] = img % 3 ? (float)(dn_test_rand(&seed) % 11) / 8 : rand_any(&seed);
            mask[total + i] = dn_test_rand(&seed) % 7 == 0;
        }
        cr_assert_eq(dn_auroc_acc_add(&a, all + total, mask + total, n, NULL), DN_OK);
        total += n;
        if (img % 10 == 9) { /* a result midway leaves the keys sorted; adds go on */
            double r = dn_auroc_acc_result(&a), want = dn_auroc(all, mask, total);
            cr_assert(r == want, "after %d images: %.17g, dn_auroc %.17g", img + 1, r, want);
        }
    }
    cr_assert_eq(a.n_pos + a.n_neg, total);
    cr_assert_float_eq(dn_auroc_acc_result(&a), ref_auroc(all, mask, total), 1e-12);
    dn_auroc_acc_free(&a);
    cr_assert_null(a.pos);
    free(all);
    free(mask);
}

Test(metrics, accumulator_refuses_nan_and_appends_nothing)
{
    const float good[] = {0.1f, 0.9f, 0.5f}, bad[] = {0.7f, NAN, 0.2f};
    const uint8_t m[] = {0, 1, 0}, bad_m[] = {1, 0, 0};
    dn_auroc_acc a;
    dn_auroc_acc_init(&a);
    cr_assert_eq(dn_auroc_acc_add(&a, good, m, 3, NULL), DN_OK);
    dn_error err;
    dn_error_clear(&err);
    cr_assert_eq(dn_auroc_acc_add(&a, bad, bad_m, 3, &err), DN_EINVAL);
    cr_assert_eq(err.code, DN_EINVAL);
    cr_assert(strstr(err.msg, "NaN"), "message: %s", err.msg);
    cr_assert_eq(a.n_pos, 1);
    cr_assert_eq(a.n_neg, 2);
    cr_assert_float_eq(dn_auroc_acc_result(&a), 1.0, EPS);
    dn_auroc_acc_free(&a);
}

/* Large enough that the buffers grow many times and the sort runs every digit. */
Test(metrics, accumulator_large_matches_auroc)
{
    uint64_t seed = 4242;
    size_t n = 1u << 20;
    float *s = malloc(n * sizeof *s);
    uint8_t *m = malloc(n);
    for (size_t i = 0; i < n; i++) {
        m[i] = dn_test_rand(&seed) % 20 == 0;
        /* Anomalies score a little higher: an AUROC well away from 0.5 and from 1. */
        s[i] = dn_test_uniform(&seed, -1, 1) + (m[i] ? 0.5f : 0.0f);
    }
    dn_auroc_acc a;
    dn_auroc_acc_init(&a);
    for (size_t off = 0; off < n; off += 65536)
        cr_assert_eq(dn_auroc_acc_add(&a, s + off, m + off, 65536, NULL), DN_OK);
    double r = dn_auroc_acc_result(&a);
    cr_assert(r == dn_auroc(s, m, n), "%.17g vs %.17g", r, dn_auroc(s, m, n));
    /* Two uniforms of width 2 shifted by 0.5: P(X + 0.5 > Y) = 1 - 1.5^2/8. */
    cr_assert_float_eq(r, 1 - 2.25 / 8, 0.005, "auroc %g", r);
    dn_auroc_acc_free(&a);
    free(s);
    free(m);
}

/* ---- thresholds and calibration ---- */

Test(metrics, mean_and_population_std)
{
    const float x[] = {2, 4, 4, 4, 5, 5, 7, 9};
    cr_assert_float_eq(dn_average(x, 8), 5.0, EPS);
    cr_assert_float_eq(dn_std(x, 8), 2.0, EPS);
    cr_assert_float_eq(dn_std(x, 1), 0.0, EPS);
    /* Far from zero: a one-pass sum of squares would lose the spread entirely. */
    const float far[] = {1e7f + 1, 1e7f - 1};
    cr_assert_float_eq(dn_std(far, 2), 1.0, EPS, "std %g", dn_std(far, 2));
    cr_assert(isnan(dn_average(x, 0)));
    cr_assert(isnan(dn_std(x, 0)));
}

Test(metrics, quantile_matches_numpy_linear)
{
    const float x[] = {3, 1, 4, 1, 5, 9, 2, 6}; /* sorted: 1 1 2 3 4 5 6 9 */
    float copy[8];
    memcpy(copy, x, sizeof x);
    /* numpy.quantile(x, q): h = 7q, x[floor h] + frac(h) * (x[floor h + 1] - x[floor h]). */
    static const double q[] = {0, 0.1, 0.25, 0.5, 0.9, 0.95, 1};
    static const float want[] = {1, 1, 1.75f, 3.5f, 6.9f, 7.95f, 9};
    for (int i = 0; i < 7; i++)
        cr_assert_float_eq(dn_quantile(copy, 8, q[i]), want[i], 1e-6, "q=%g: %g, numpy %g", q[i],
                           dn_quantile(copy, 8, q[i]), want[i]);
    cr_assert(memcmp(copy, x, sizeof x) == 0, "x was modified");

    const float one[] = {-2.5f}, neg[] = {-3, -1, -2};
    cr_assert_float_eq(dn_quantile(one, 1, 0.3), -2.5f, 0);
    cr_assert_float_eq(dn_quantile(neg, 3, 0.75), -1.5f, 1e-6); /* h=1.5 between -2 and -1 */
    cr_assert(isnan(dn_quantile(x, 0, 0.5)));
    cr_assert(isnan(dn_quantile(x, 8, -0.01)));
    cr_assert(isnan(dn_quantile(x, 8, 1.01)));
    cr_assert(isnan(dn_quantile(x, 8, NAN)));
    const float with_nan[] = {1, NAN, 3};
    cr_assert(isnan(dn_quantile(with_nan, 3, 0.5)), "a NaN in x gives NaN, as numpy");
}

static int asc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The order statistics behind dn_quantile against qsort, on values of every magnitude. */
Test(metrics, quantile_random_against_qsort)
{
    uint64_t seed = 99;
    size_t n = 5001;
    float *x = malloc(n * sizeof *x), *sorted = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = rand_any(&seed);
    memcpy(sorted, x, n * sizeof *x);
    qsort(sorted, n, sizeof *sorted, asc);
    for (size_t i = 0; i < n; i += i % 100 == 0 ? 1 : 37) {
        float got = dn_quantile(x, n, (double)i / (double)(n - 1));
        cr_assert(got == sorted[i], "order statistic %zu: %g, qsort %g", i, got, sorted[i]);
    }
    free(x);
    free(sorted);
}

Test(metrics, max_f1_hand_case)
{
    const float s[] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f};
    const uint8_t l[] = {1, 1, 0, 1, 0, 0};
    /* F1 = 2TP/(TP+FP+3) per cut: .9 -> 1/2, .8 -> 4/5, .7 -> 2/3, .6 -> 6/7, .5 -> 3/4,
     * .4 -> 2/3. Best at the cut 0.6; the next lower score is 0.5. */
    double f1 = 0;
    float t = dn_max_f1_threshold(s, l, 6, &f1);
    cr_assert_float_eq(f1, 6.0 / 7, EPS, "f1 %g", f1);
    cr_assert_float_eq(t, 0.55f, 1e-6, "threshold %g", t);

    /* Only anomalies: every one flagged at the lowest score, which is the threshold. */
    const uint8_t ones[] = {1, 1, 1, 1, 1, 1};
    t = dn_max_f1_threshold(s, ones, 6, &f1);
    cr_assert_float_eq(f1, 1.0, EPS);
    cr_assert_float_eq(t, 0.4f, 0);

    /* Ties: the cut at 2 takes both 2s; between 2 and 1 the midpoint is 1.5. */
    const float ts[] = {1, 2, 2, 3, 1};
    const uint8_t tl[] = {0, 1, 0, 1, 0};
    t = dn_max_f1_threshold(ts, tl, 5, NULL);
    cr_assert_float_eq(t, 1.5f, 0, "threshold %g", t);

    /* Equal F1 (2/3) at the cuts 4 (TP 2, FP 1) and 1 (TP 3, FP 3): the higher wins. */
    const float es[] = {6, 5, 4, 3, 2, 1};
    const uint8_t el[] = {1, 0, 1, 0, 0, 1};
    t = dn_max_f1_threshold(es, el, 6, &f1);
    cr_assert_float_eq(f1, 2.0 / 3, EPS, "f1 %g", f1);
    cr_assert_float_eq(t, 3.5f, 0, "threshold %g", t);

    /* Adjacent floats have no midpoint: the threshold is the kept score itself. */
    const float adj[] = {1.0f, nextafterf(1.0f, 0)};
    const uint8_t al[] = {1, 0};
    t = dn_max_f1_threshold(adj, al, 2, &f1);
    cr_assert(t == 1.0f, "threshold %.9g", t);

    const uint8_t zeros[] = {0, 0, 0, 0, 0, 0};
    f1 = 0;
    cr_assert(isnan(dn_max_f1_threshold(s, zeros, 6, &f1)));
    cr_assert(isnan(f1));
}

Test(metrics, max_f1_random_matches_naive)
{
    uint64_t seed = 31337;
    for (int round = 0; round < 30; round++) {
        size_t n = 1 + dn_test_rand(&seed) % 400;
        float *s = malloc(n * sizeof *s);
        uint8_t *l = malloc(n);
        rand_tied(&seed, s, l, n, 2 + round % 12, 30);
        l[0] = 1; /* at least one anomaly */
        double f1;
        float t = dn_max_f1_threshold(s, l, n, &f1);
        double want = ref_best_f1(s, l, n);
        cr_assert_float_eq(f1, want, 1e-12, "round %d: f1 %.15g, naive %.15g", round, f1, want);
        /* The threshold must realise that F1 when applied as "score >= t". */
        cr_assert_float_eq(f1_at(s, l, n, t), want, 1e-12, "round %d: t=%g gives F1 %g", round, t,
                           f1_at(s, l, n, t));
        free(s);
        free(l);
    }
}

Test(metrics, conformal_p_edges)
{
    const float cal[] = {1, 2, 3, 4};
    cr_assert_float_eq(dn_conformal_p(cal, 4, 10), 1.0 / 5, EPS, "above all");
    cr_assert_float_eq(dn_conformal_p(cal, 4, 0), 1.0, EPS, "below all");
    cr_assert_float_eq(dn_conformal_p(cal, 4, 1), 1.0, EPS, "equal to the lowest");
    cr_assert_float_eq(dn_conformal_p(cal, 4, 3), 3.0 / 5, EPS, "ties count as >=");
    cr_assert_float_eq(dn_conformal_p(cal, 4, 2.5f), 3.0 / 5, EPS);
    cr_assert_float_eq(dn_conformal_p(cal, 4, 4), 2.0 / 5, EPS);
    cr_assert_float_eq(dn_conformal_p(cal, 0, 4), 1.0, EPS, "no calibration: p = 1");
    const float dup[] = {2, 2, 2};
    cr_assert_float_eq(dn_conformal_p(dup, 3, 2), 1.0, EPS);
    cr_assert_float_eq(dn_conformal_p(dup, 3, 2.0001f), 0.25, EPS);
    cr_assert(isnan(dn_conformal_p(cal, 4, NAN)));
}
