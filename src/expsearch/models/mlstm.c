/* The mLSTM cell of xLSTM in its stabilised parallel form, forward and backward, one
 * (row, head) at a time (models/mlstm_kernel.py calls it, models/xlstm.py gives the
 * formulation and the PyTorch reference `mlstm_parallel`):
 *
 *     cum_t = sum_{r <= t} log sigmoid(f_r)
 *     w_ts  = cum_t - cum_s + i_s  (s <= t),   m_t = max_s w_ts
 *     D_ts  = exp(w_ts - m_t),                 S_ts = (q_t . k_s) / sqrt(d) * D_ts
 *     n_t   = max(|sum_s S_ts|, exp(-m_t)),    h_t  = sum_s (S_ts / n_t) v_s
 *
 * m is a constant to the backward: h does not depend on it (numerator and normaliser
 * both scale by exp(-m)), as in the reference, which detaches it.
 *
 * Why a kernel: at the sizes searched (T <= 30, head size 32) each (row, head) is a
 * T x T problem that fits in L1, while the PyTorch form runs about thirty passes over
 * (B, H, T, T) tensors forward and backward, each written to memory and read back:
 * about 40 % of an xLSTM training step on one core, for a few MFLOP of arithmetic.
 * The backward recomputes D and q.k rather than keeping them from the forward. The
 * work per (row, head) is small T x T x d products, run LANES steps or LANES
 * channels at a time in vector registers.
 *
 * Layout (row-major float32): qkv and its gradient (nb, nt, nh, 3 nd): each head's
 * q, k and v side by side at every step; h and its gradient (nb, nt, nh, nd); gates and
 * their gradient (nb, nt, 2 nh): i of head h at h, f at nh + h. With the gates' linear
 * map (weight (2 nh, 3 nh nd), bias (2 nh); weight NULL: the gates are an input), the
 * forward computes the gates from qkv into `gates` and the backward adds their gradient
 * into qkv's, weight's and bias's (the last two accumulated into: the caller zeroes them).
 * Single-threaded on purpose: a shard trains on one core (see models/scan.py).
 * No infinities are used (the build has -ffast-math): an m below about -88 gives
 * exp(-m) = inf, hence n = inf and h = 0, as in the reference.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

typedef struct {
    int64_t nb, nt, nh, nd;
} Dims;

/* Per-call scratch for one (row, head): D and QK (T x np), two rows (gP, row), per-step
 * vectors (cum, ig, gcum and gi padded to np: the row loops run over whole vectors), and
 * k and v transposed to (d, np), so that q.k and g.v for a whole row of u run over u in
 * contiguous vectors instead of one reduction across d per pair. */
typedef struct {
    float *D, *QK, *gP, *row, *cum, *ig, *gcum, *gi, *m, *e, *n, *rowsum, *Kt, *Vt;
} Scratch;

static Scratch scratch_new(int64_t nt, int64_t nd)
{
    const int64_t np = padded(nt);
    /* calloc: the padding columns of Kt and Vt must read as 0. */
    float *block = calloc(2 * nt * np + 6 * np + 4 * nt + 2 * nd * np, sizeof(float));
    Scratch s = {.D = block};
    s.QK = s.D + nt * np;
    s.gP = s.QK + nt * np;
    s.row = s.gP + np;
    s.cum = s.row + np;
    s.ig = s.cum + np;
    s.gcum = s.ig + np;
    s.gi = s.gcum + np;
    s.m = s.gi + np;
    s.e = s.m + nt;
    s.n = s.e + nt;
    s.rowsum = s.n + nt;
    s.Kt = s.rowsum + nt;
    s.Vt = s.Kt + nd * np;
    return s;
}

/* log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)), as torch computes it. */
static inline float log_sigmoid(float x)
{
    return fminf(x, 0.0f) - log1pf(expf(-fabsf(x)));
}

/* out[i] = log sigmoid(x[i]) for i < count, in one vectorised pass (libmvec): a row's
 * gates for every step and head at once, instead of a scalar call per step inside each
 * head's loop. */
static void log_sigmoid_row(IN x, int64_t count, OUT out)
{
    for (int64_t i = 0; i < count; i++)
        out[i] = log_sigmoid(x[i]);
}

/* The gates' linear map inside the kernel: an `addmm` of (B T, 3 H d) by (3 H d, 2 H)
 * ran at 44 GFLOP/s (8 output columns), and its two gradient products at 44-58; here
 * each is a pass over a row's qkv while it is in cache for the cell.
 *
 * gates[t, j] = bias[j] + sum_i w[j, i] x[t, i] for the nt steps of one row (x's rows
 * nin apart), four gates at a time in vector accumulators over i. */
static void gate_rows(IN x, IN w, IN bias, OUT gates, int64_t nt, int64_t nin, int64_t ng)
{
    const int64_t whole = nin / LANES * LANES;
    for (int64_t t = 0; t < nt; t++) {
        IN xt = x + t * nin;
        int64_t j = 0;
        for (; j + 4 <= ng; j += 4) {
            IN w0 = w + j * nin;
            vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int64_t i = 0; i < whole; i += LANES) {
                const vec xv = V(xt + i);
                a0 += V(w0 + i) * xv;
                a1 += V(w0 + nin + i) * xv;
                a2 += V(w0 + 2 * nin + i) * xv;
                a3 += V(w0 + 3 * nin + i) * xv;
            }
            float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
            for (int64_t i = whole; i < nin; i++) {
                s0 += w0[i] * xt[i];
                s1 += w0[nin + i] * xt[i];
                s2 += w0[2 * nin + i] * xt[i];
                s3 += w0[3 * nin + i] * xt[i];
            }
            gates[t * ng + j] = bias[j] + s0;
            gates[t * ng + j + 1] = bias[j + 1] + s1;
            gates[t * ng + j + 2] = bias[j + 2] + s2;
            gates[t * ng + j + 3] = bias[j + 3] + s3;
        }
        for (; j < ng; j++) {
            vec a = {0};
            for (int64_t i = 0; i < whole; i += LANES)
                a += V(w + j * nin + i) * V(xt + i);
            float sum = hsum(a);
            for (int64_t i = whole; i < nin; i++)
                sum += w[j * nin + i] * xt[i];
            gates[t * ng + j] = bias[j] + sum;
        }
    }
}

/* The backward of `gate_rows` for one row, from the gates' gradient g (nt, ng): gx +=
 * g w, gw += g^T x and gbias += the column sums of g, each row of a product a `combine`
 * (vector.h) into `tmp` (nin floats), then added. `col` (nt floats) holds a column of g. */
static void gate_rows_backward(IN x, IN w, IN g, OUT gx, OUT gw, OUT gbias, int64_t nt,
                               int64_t nin, int64_t ng, OUT tmp, OUT col)
{
    for (int64_t t = 0; t < nt; t++) {
        combine(g + t * ng, w, nin, ng, nin, tmp);
        for (int64_t i = 0; i < nin; i++)
            gx[t * nin + i] += tmp[i];
    }
    for (int64_t j = 0; j < ng; j++) {
        float sum = 0.0f;
        for (int64_t t = 0; t < nt; t++) {
            col[t] = g[t * ng + j];
            sum += col[t];
        }
        gbias[j] += sum;
        combine(col, x, nin, nt, nin, tmp);
        for (int64_t i = 0; i < nin; i++)
            gw[j * nin + i] += tmp[i];
    }
}

/* sigmoid(-x) from e = exp(-|x|) in (0, 1]: no overflow, where 1 / (1 + exp(x)) would
 * reach inf and fast-math's reciprocal turns 1 / inf into NaN. */
static void sigmoid_neg_row(IN x, int64_t count, OUT out)
{
    for (int64_t i = 0; i < count; i++) {
        const float e = expf(-fabsf(x[i]));
        out[i] = (x[i] > 0.0f ? e : 1.0f) / (1.0f + e);
    }
}

/* cum, m, e = exp(-m), D, QK = q.k / sqrt(d), rowsum and n of head `hd`, and Kt. Row t
 * of D and QK is computed over whole vectors, columns 0 .. padded(t + 1) - 1: the
 * columns after t (later steps) are masked to -3e38 before the exp, so D is exactly 0
 * there and every product with it, forward and backward, is 0 too (at T <= 30 a row is
 * one or two vectors; a loop over the t + 1 valid columns ran scalar below LANES).
 * qkv_b, gates_b, ls_b: the row's first step of qkv, gates and their log sigmoid. */
static void cell(IN qkv_b, IN gates_b, IN ls_b, int64_t hd, Dims z, Scratch s)
{
    const int64_t step = z.nh * 3 * z.nd, gstep = 2 * z.nh, nt = z.nt, nd = z.nd;
    const int64_t np = padded(nt);
    const float inv_root = 1.0f / sqrtf((float)nd);
    float c = 0.0f;
    for (int64_t t = 0; t < nt; t++) {
        c += ls_b[t * gstep + z.nh + hd];
        s.cum[t] = c;
        s.ig[t] = gates_b[t * gstep + hd];
    }
    transpose_rows(qkv_b + hd * 3 * nd + nd, step, nt, nd, s.Kt);
    for (int64_t t = 0; t < nt; t++) {
        const int64_t width = padded(t + 1);
        float *D = s.D + t * np, *QK = s.QK + t * np;
        const float ct = s.cum[t];
        float m = -3e38f;
        for (int64_t u = 0; u < width; u++) {
            D[u] = u <= t ? ct - s.cum[u] + s.ig[u] : -3e38f;
            m = fmaxf(m, D[u]);
        }
        row_times(qkv_b + t * step + hd * 3 * nd, s.Kt, nd, np, t + 1, QK);
        vec sum = {0};
        for (int64_t u0 = 0; u0 < width; u0 += LANES) {
            V(D + u0) = vexp(V(D + u0) - m);
            V(QK + u0) *= inv_root;
            sum += V(QK + u0) * V(D + u0);
        }
        s.m[t] = m;
        s.rowsum[t] = hsum(sum);
    }
    for (int64_t t = 0; t < nt; t++) {
        s.e[t] = expf(-s.m[t]);
        s.n[t] = fmaxf(fabsf(s.rowsum[t]), s.e[t]);
    }
}

void mlstm_forward(IN qkv, IN weight, IN bias, float *restrict gates, OUT h, int64_t nb,
                   int64_t nt, int64_t nh, int64_t nd)
{
    const Dims z = {nb, nt, nh, nd};
    const int64_t step = nh * 3 * nd, gstep = 2 * nh, np = padded(nt);
    Scratch s = scratch_new(nt, nd);
    float *ls = malloc(sizeof(float) * nt * gstep);
    for (int64_t b = 0; b < nb; b++) {
        IN qkv_b = qkv + b * nt * step;
        float *gates_b = gates + b * nt * gstep;
        if (b + 1 < nb) /* the next row's inputs into cache meanwhile (vector.h) */
            prefetch(qkv_b + nt * step, nt * step);
        if (weight != NULL)
            gate_rows(qkv_b, weight, bias, gates_b, nt, step, gstep);
        log_sigmoid_row(gates_b, nt * gstep, ls);
        for (int64_t hd = 0; hd < nh; hd++) {
            cell(qkv_b, gates_b, ls, hd, z, s);
            for (int64_t t = 0; t < nt; t++) {
                IN D = s.D + t * np;
                IN QK = s.QK + t * np;
                const float n = s.n[t];
                for (int64_t u0 = 0; u0 <= t; u0 += LANES)
                    V(s.row + u0) = V(QK + u0) * V(D + u0) / n;
                combine(s.row, qkv_b + hd * 3 * nd + 2 * nd, step, t + 1, nd,
                        h + ((b * nt + t) * nh + hd) * nd);
            }
        }
    }
    free(ls);
    free(s.D);
}

/* d n / d rowsum: sign(rowsum) where |rowsum| is the larger, half of it at a tie
 * (torch.maximum splits a tie's gradient), 0 where exp(-m) is the larger. */
static inline float normaliser_slope(float rowsum, float e)
{
    const float a = fabsf(rowsum);
    const float sign = rowsum > 0.0f ? 1.0f : (rowsum < 0.0f ? -1.0f : 0.0f);
    return a > e ? sign : (a == e ? 0.5f * sign : 0.0f);
}

void mlstm_backward(IN qkv, IN gates, IN weight, IN gh, OUT gqkv, OUT ggates, OUT gweight,
                    OUT gbias, int64_t nb, int64_t nt, int64_t nh, int64_t nd)
{
    const Dims z = {nb, nt, nh, nd};
    const int64_t step = nh * 3 * nd, gstep = 2 * nh, np = padded(nt);
    const float inv_root = 1.0f / sqrtf((float)nd);
    Scratch s = scratch_new(nt, nd);
    /* Per row: the gates' log sigmoid and sigmoid(-x), gate_rows_backward's scratch. */
    float *ls = malloc(sizeof(float) * (2 * nt * gstep + step + nt)), *sn = ls + nt * gstep;
    float *tmp = sn + nt * gstep, *col = tmp + step;
    for (int64_t b = 0; b < nb; b++) {
        IN qkv_b = qkv + b * nt * step;
        IN gates_b = gates + b * nt * gstep;
        IN gh_b = gh + b * nt * nh * nd;
        float *gqkv_b = gqkv + b * nt * step;
        if (b + 1 < nb) { /* the next row's inputs and outputs into cache meanwhile */
            prefetch(qkv_b + nt * step, nt * step);
            prefetch(gh_b + nt * nh * nd, nt * nh * nd);
            prefetch(gqkv_b + nt * step, nt * step);
        }
        log_sigmoid_row(gates_b, nt * gstep, ls);
        sigmoid_neg_row(gates_b, nt * gstep, sn);
        for (int64_t hd = 0; hd < nh; hd++) {
            const int64_t at = hd * 3 * nd;
            cell(qkv_b, gates_b, ls, hd, z, s);
            transpose_rows(qkv_b + at + 2 * nd, step, nt, nd, s.Vt);
            memset(s.gcum, 0, sizeof(float) * np);
            memset(s.gi, 0, sizeof(float) * np);
            /* Row t: h_t = sum_u P_tu v_u with P = S / n, so dL/dP_tu = g_t . v_u and
             * dL/dn_t = -sum_u dL/dP_tu P_tu / n_t. Row t of D becomes P and row t of QK
             * becomes dL/d(q.k): the columns of both give dL/dv and dL/dk after the rows. */
            for (int64_t t = 0; t < nt; t++) {
                float *D = s.D + t * np, *QK = s.QK + t * np;
                const float n = s.n[t];
                const int64_t width = padded(t + 1); /* D is 0 after column t: see cell */
                row_times(gh_b + (t * nh + hd) * nd, s.Vt, nd, np, t + 1, s.gP);
                vec gn = {0};
                for (int64_t u0 = 0; u0 < width; u0 += LANES) {
                    V(s.row + u0) = V(QK + u0) * V(D + u0) / n;
                    gn -= V(s.gP + u0) * V(s.row + u0);
                }
                const float g_sum = hsum(gn) / n * normaliser_slope(s.rowsum[t], s.e[t]);
                vec g_row = {0};
                for (int64_t u0 = 0; u0 < width; u0 += LANES) {
                    const vec g_s = V(s.gP + u0) / n + g_sum;        /* dL/dS_tu */
                    const vec g_w = g_s * V(QK + u0) * V(D + u0);    /* through exp(w - m) */
                    V(QK + u0) = g_s * V(D + u0) * inv_root;         /* through q.k / sqrt(d) */
                    V(D + u0) = V(s.row + u0);
                    /* w_tu = cum_t - cum_u + i_u */
                    V(s.gi + u0) += g_w;
                    V(s.gcum + u0) -= g_w;
                    g_row += g_w;
                }
                s.gcum[t] += hsum(g_row);
                /* dL/dq_t = sum_u dL/d(q.k)_tu k_u / sqrt(d) (the 1/sqrt(d) is in QK). */
                combine(QK, qkv_b + at + nd, step, t + 1, nd, gqkv_b + t * step + at);
            }
            /* Column u: dL/dv_u = sum_{t >= u} P_tu g_t, dL/dk_u = sum_{t >= u}
             * dL/d(q.k)_tu q_t. */
            for (int64_t u = 0; u < nt; u++) {
                const int64_t len = nt - u;
                for (int64_t t = u; t < nt; t++) {
                    s.row[t - u] = s.D[t * np + u];
                    s.gP[t - u] = s.QK[t * np + u];
                }
                combine(s.row, gh_b + (u * nh + hd) * nd, nh * nd, len, nd,
                        gqkv_b + u * step + at + 2 * nd);
                combine(s.gP, qkv_b + u * step + at, step, len, nd, gqkv_b + u * step + at + nd);
            }
            /* cum_t = sum_{r <= t} log sigmoid(f_r): dL/df_r = sum_{t >= r} dL/dcum_t
             * times sigmoid(-f_r). */
            float acc = 0.0f;
            for (int64_t t = nt - 1; t >= 0; t--) {
                const int64_t at_t = (b * nt + t) * gstep;
                acc += s.gcum[t];
                ggates[at_t + hd] = s.gi[t];
                ggates[at_t + nh + hd] = acc * sn[t * gstep + nh + hd];
            }
        }
        if (weight != NULL) /* the gates' gradient into qkv's, weight's and bias's */
            gate_rows_backward(qkv_b, weight, ggates + b * nt * gstep, gqkv_b, gweight, gbias,
                               nt, step, gstep, tmp, col);
    }
    free(ls);
    free(s.D);
}
