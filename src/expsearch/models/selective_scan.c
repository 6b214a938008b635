/* Mamba-1 selective scan with its step size and output gate fused, forward and backward,
 * vectorised across channels:
 *
 *     dt_t = softplus(delta_t + delta_bias)   (or delta_t + delta_bias: softplus off)
 *     h_t = exp(dt_t A_d) * h_{t-1} + dt_t u_t B_t,     y_t = C_t . h_t + D_d u_t
 *     out_t = y_t * silu(z_t + z_bias)        (or y_t: no z)
 *
 * As Mamba's own kernel does, the step size's softplus and the output gate are done here,
 * per (row, step, channel), where they cost little next to the recurrence's d_state-fold
 * work; as separate PyTorch ops they were about ten passes over (B, T, d_inner) tensors
 * forward and backward.
 *
 * Each batch row runs its recurrence for a block of LANES channels at once: the
 * channels are the vector lanes (u, delta, z and out are contiguous in the channel),
 * and the state is d_state vectors of LANES in L1, one per state index n, so every
 * operation of the inner loop is one vector operation and no sum crosses lanes.
 * Channels past the last are padded with u = delta = 0: their state stays 0 (dt u = 0)
 * and every gradient they would give is 0 or discarded.
 *
 * The backward pass recomputes the states of a row rather than storing the
 * forward's (B T d_inner d_state floats); the forward keeps only the step sizes dt
 * (B T d_inner, when a backward will run), so that the backward's recomputation does
 * not evaluate the softplus (two libmvec calls per step and block) again. It then steps
 * back through time with all the row's blocks at each step: its sums over channels (gB,
 * gC) are collected per lane over the blocks and summed across lanes once per step,
 * in two row-sized arrays that stay in L1; its sums over the state (the gradients
 * of dt and u) are `vec` variables, which gcc keeps in registers where an array
 * would make every step of the sum a store and a reload.
 *
 * Layout (row-major float32): u, delta, out, dts, gout, gu, gdelta, gz: (nb, nt, nd)
 * contiguous; z: (nb, nt, nd) with row stride zs (a half of a wider projection is read
 * in place);
 * A, gA: (nd, ns); B, C, gB, gC: (nb, nt, ns); D, delta_bias, z_bias and their
 * gradients: (nd). z, delta_bias (and their gradients) may be NULL: absent. gA, gB,
 * gC, gD, gdelta_bias and gz_bias are accumulated into: the caller zeroes them.
 * Single-threaded on purpose: a shard trains on one core (see models/scan.py).
 * Built by models/native.py. The recurrence's exp and the gates' sigmoid are inline
 * (vexp, vector.h); the forward's softplus goes through glibc's libmvec.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

/* Per-channel parameters in blocks of LANES: A transposed to (blocks, ns, LANES), the
 * vectors (D, delta_bias, z_bias) padded to blocks * LANES; a NULL vector reads as 0. */
typedef struct {
    float *At, *Dp, *dbp, *zbp;
} Blocked;

static void pad(IN src, int64_t nd, OUT dst)
{
    if (src)
        memcpy(dst, src, sizeof(float) * nd);
}

static Blocked block_params(IN A, IN D, IN db, IN zb, int64_t nd, int64_t ns)
{
    const int64_t blocks = (nd + LANES - 1) / LANES;
    Blocked p = {
        calloc(blocks * ns * LANES, sizeof(float)),
        calloc(blocks * LANES, sizeof(float)),
        calloc(blocks * LANES, sizeof(float)),
        calloc(blocks * LANES, sizeof(float)),
    };
    for (int64_t d = 0; d < nd; d++)
        for (int64_t n = 0; n < ns; n++)
            p.At[((d / LANES) * ns + n) * LANES + d % LANES] = A[d * ns + n];
    pad(D, nd, p.Dp);
    pad(db, nd, p.dbp);
    pad(zb, nd, p.zbp);
    return p;
}

static void free_blocked(Blocked p)
{
    free(p.At);
    free(p.Dp);
    free(p.dbp);
    free(p.zbp);
}

/* LANES values of src from index `at`, `width` of them real, the rest 0. A full block is
 * one vector load: the lane-by-lane form, which only the last block of a channel count
 * that is not a multiple of LANES needs, compiles to scalar loads and branches that cost
 * the forward a fifth of its time. */
static inline void load(IN src, int64_t at, int64_t width, OUT out)
{
    if (width == LANES) {
        V(out) = V(src + at);
        return;
    }
    for (int j = 0; j < LANES; j++)
        out[j] = j < width ? src[at + j] : 0.0f;
}

static inline void store(IN values, int64_t at, int64_t width, OUT dst)
{
    if (width == LANES) {
        V(dst + at) = V(values);
        return;
    }
    for (int64_t j = 0; j < width; j++)
        dst[at + j] = values[j];
}

/* Batch row b's (nt, nd) slices of the tensors a pass reads or writes into cache, ahead
 * of their use (vector.h's prefetch): a block of channels reads each step's LANES
 * floats nd apart, too short a run for the hardware's stride prefetcher. z: rows zs
 * apart; NULL pointers skipped. */
static void prefetch_row(int64_t b, int64_t nt, int64_t nd, IN a, IN c, IN e, float *w1,
                         float *w2, IN z, int64_t zs)
{
    const float *rows[] = {a, c, e, w1, w2};
    for (int i = 0; i < 5; i++)
        if (rows[i])
            prefetch(rows[i] + b * nt * nd, nt * nd);
    if (z)
        for (int64_t t = 0; t < nt; t++)
            prefetch(z + (b * nt + t) * zs, nd);
}

/* softplus(x) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1], as log1p(e) =
 * 2 atanh(s), s = e / (2 + e) in (0, 1/3]: the odd series to s^13 is within 1e-8 of it
 * and keeps full relative precision for small e (log(1 + e) loses e below float's
 * epsilon). In vector operations: written per lane, under a `softplus ?` choice, gcc
 * left it scalar, calls to libm's log1pf and expf per lane, 40 % of the forward on an
 * AVX2 machine. */
static inline vec vsoftplus(vec x)
{
    const vec e = vexp(select(x > 0.0f, -x, x));
    const vec s = e / (2.0f + e), s2 = s * s;
    vec p = s2 * (1.0f / 13) + 1.0f / 11;
    p = p * s2 + 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    return select(x > 0.0f, x, splat(0.0f)) + 2.0f * (s + s * s2 * p);
}

/* x + bias, and the step size: softplus of it or it as it is. */
static inline void step_size(IN raw, IN bias, int softplus, OUT x, OUT step)
{
    V(x) = V(raw) + V(bias);
    V(step) = softplus ? vsoftplus(V(x)) : V(x);
}

/* s = 1 / (1 + exp(-x)) with the inline exp, which stays finite (exp(88.3) at most), so
 * no x overflows the denominator; a libmvec call per step and block cost the backward
 * about a tenth of its time. For x >= 0, 1 - s is returned as exp(-x) s, not by the
 * subtraction, whose cancellation near s = 1 is as large as the division's rounding
 * (gcc divides by a reciprocal estimate under -ffast-math on AVX2): the gate's gradient
 * multiplies it by x. */
static inline void sigmoid(IN x, OUT s, float *one_minus_s)
{
    const vec e = vexp(-V(x));
    V(s) = 1.0f / (1.0f + e);
    if (one_minus_s) /* NULL: not wanted; where e > 1, s <= 1/2 has no cancellation */
        V(one_minus_s) = select(V(x) >= 0.0f, e * V(s), 1.0f - V(s));
}

void scan_forward(IN u, IN delta, IN A, IN B, IN C, IN D, IN z, IN delta_bias, IN z_bias,
                  OUT out, OUT dts, int64_t nb, int64_t nt, int64_t nd, int64_t ns,
                  int64_t zs, int64_t softplus)
{
    const int64_t blocks = (nd + LANES - 1) / LANES, row = ns * LANES;
    const Blocked p = block_params(A, D, delta_bias, z_bias, nd, ns);
    float *h = malloc(sizeof(float) * row);
    /* A block's step sizes and exp(dt A) for every step (L1: 1.3 and 20 KB at T 20). */
    float *steps = malloc(sizeof(float) * nt * LANES);
    float *decay = malloc(sizeof(float) * nt * row);
    for (int64_t b = 0; b < nb; b++) {
        if (b + 1 < nb)
            prefetch_row(b + 1, nt, nd, u, delta, NULL, out, dts, z, zs);
        for (int64_t k = 0; k < blocks; k++) {
            const int64_t d0 = k * LANES, width = nd - d0 < LANES ? nd - d0 : LANES;
            IN Ak = p.At + k * row;
            /* In passes over the steps: the step sizes, then every exp(dt A), then the
             * recurrence. The first two are independent from step to step, so the core
             * overlaps them; in one loop, every step's recurrence waited on its own
             * softplus and exps, long chains of dependent operations (the forward 2x
             * slower than the passes). */
            for (int64_t t = 0; t < nt; t++) {
                const int64_t at = (b * nt + t) * nd + d0;
                if (t + 1 < nt) {
                    prefetch_line(delta + at + nd);
                    if (dts)
                        prefetch_line_for_write(dts + at + nd);
                }
                float raw[LANES], x[LANES];
                load(delta, at, width, raw);
                step_size(raw, p.dbp + d0, (int)softplus, x, steps + t * LANES);
                if (dts) /* NULL: no backward will run */
                    store(steps + t * LANES, at, width, dts);
            }
            for (int64_t t = 0; t < nt; t++) {
                const vec stepv = V(steps + t * LANES);
                for (int64_t n = 0; n < ns; n++)
                    V(decay + t * row + n * LANES) = vexp(stepv * V(Ak + n * LANES));
            }
            memset(h, 0, sizeof(float) * row);
            for (int64_t t = 0; t < nt; t++) {
                const int64_t at = (b * nt + t) * nd + d0;
                if (t + 1 < nt) {
                    prefetch_line(u + at + nd);
                    if (z)
                        prefetch_line(z + (b * nt + t + 1) * zs + d0);
                    prefetch_line_for_write(out + at + nd);
                }
                IN Bt = B + (b * nt + t) * ns;
                IN Ct = C + (b * nt + t) * ns;
                IN decay_t = decay + t * row;
                float uu[LANES], acc[LANES];
                load(u, at, width, uu);
                const vec dtuv = V(steps + t * LANES) * V(uu);
                vec accv = V(p.Dp + d0) * V(uu);
                for (int64_t n = 0; n < ns; n++) {
                    OUT hn = h + n * LANES;
                    V(hn) = V(decay_t + n * LANES) * V(hn) + dtuv * Bt[n];
                    accv += V(hn) * Ct[n];
                }
                V(acc) = accv;
                if (z) {
                    float g[LANES], s[LANES];
                    load(z, (b * nt + t) * zs + d0, width, g);
                    V(g) += V(p.zbp + d0);
                    sigmoid(g, s, NULL);
                    V(acc) *= V(g) * V(s);
                }
                store(acc, at, width, out);
            }
        }
    }
    free(decay);
    free(steps);
    free(h);
    free_blocked(p);
}

void scan_backward(IN u, IN delta, IN A, IN B, IN C, IN D, IN z, IN delta_bias, IN z_bias,
                   IN dts, IN gout, OUT gu, OUT gdelta, OUT gA, OUT gB, OUT gC, OUT gD, OUT gz,
                   OUT gdelta_bias, OUT gz_bias, int64_t nb, int64_t nt, int64_t nd,
                   int64_t ns, int64_t zs, int64_t softplus)
{
    const int64_t blocks = (nd + LANES - 1) / LANES, row = ns * LANES;
    const Blocked p = block_params(A, D, delta_bias, z_bias, nd, ns);
    float *gAt = calloc(blocks * row, sizeof(float));
    float *gDp = calloc(blocks * LANES, sizeof(float));
    float *gdbp = calloc(blocks * LANES, sizeof(float));
    float *gzbp = calloc(blocks * LANES, sizeof(float));
    /* Per block of a batch row: hs[t + 1] = h_t (hs[0] = 0), exp(dt_t A), dt_t and y_t
     * before the gate; then dL/dh. */
    float *hs = malloc(sizeof(float) * blocks * (nt + 1) * row);
    float *decay = malloc(sizeof(float) * blocks * nt * row);
    float *steps = malloc(sizeof(float) * blocks * nt * LANES);
    float *ys = malloc(sizeof(float) * blocks * nt * LANES);
    float *gh = malloc(sizeof(float) * blocks * row);
    /* gB_t and gC_t per lane, summed over a row's blocks: 2 row-sized vectors in L1. */
    float *gBt = malloc(sizeof(float) * row);
    float *gCt = malloc(sizeof(float) * row);
    for (int64_t b = 0; b < nb; b++) {
        if (b + 1 < nb) {
            prefetch_row(b + 1, nt, nd, u, dts, gout, gu, gdelta, z, zs);
            prefetch_row(b + 1, nt, nd, delta, NULL, NULL, gz, NULL, NULL, 0);
        }
        /* The forward again, every block of the row, keeping what the backward reads. */
        for (int64_t k = 0; k < blocks; k++) {
            const int64_t d0 = k * LANES, width = nd - d0 < LANES ? nd - d0 : LANES;
            IN Ak = p.At + k * row;
            float *hs_k = hs + k * (nt + 1) * row, *decay_k = decay + k * nt * row;
            float *steps_k = steps + k * nt * LANES;
            memset(hs_k, 0, sizeof(float) * row);
            for (int64_t t = 0; t < nt; t++) {
                const int64_t at = (b * nt + t) * nd + d0;
                if (t + 1 < nt) {
                    prefetch_line(u + at + nd);
                    prefetch_line(dts + at + nd);
                }
                IN Bt = B + (b * nt + t) * ns;
                IN Ct = C + (b * nt + t) * ns;
                float uu[LANES];
                load(u, at, width, uu);
                load(dts, at, width, steps_k + t * LANES);
                const vec stepv = V(steps_k + t * LANES), dtuv = stepv * V(uu);
                vec accv = V(p.Dp + d0) * V(uu);
                for (int64_t n = 0; n < ns; n++) {
                    IN An = Ak + n * LANES;
                    IN prev = hs_k + t * row + n * LANES;
                    OUT next = hs_k + (t + 1) * row + n * LANES;
                    OUT a = decay_k + t * row + n * LANES;
                    V(a) = vexp(stepv * V(An));
                    V(next) = V(a) * V(prev) + dtuv * Bt[n];
                    accv += V(next) * Ct[n];
                }
                V(ys + (k * nt + t) * LANES) = accv;
            }
        }
        /* Back through the steps, all blocks of the row at each step, so that the sums
         * over channels (gB_t, gC_t) stay in two small arrays rather than per-step
         * arrays of every block: those made every iteration a load and a store through
         * L2. gh carries dL/dh_t through the recurrence, already multiplied by the next
         * step's decay: dL/dh_t = gy_t C_t + exp(dt_{t+1} A) dL/dh_{t+1}. */
        memset(gh, 0, sizeof(float) * blocks * row);
        for (int64_t t = nt - 1; t >= 0; t--) {
            IN Bt = B + (b * nt + t) * ns;
            IN Ct = C + (b * nt + t) * ns;
            memset(gBt, 0, sizeof(float) * row);
            memset(gCt, 0, sizeof(float) * row);
            if (t > 0) /* step t - 1's lines, all blocks: used next */
                for (int64_t j = 0, at = (b * nt + t - 1) * nd; j < nd; j += LINE_FLOATS) {
                    prefetch_line(gout + at + j);
                    prefetch_line(u + at + j);
                    prefetch_line(delta + at + j);
                    if (z)
                        prefetch_line(z + (b * nt + t - 1) * zs + j);
                    prefetch_line_for_write(gu + at + j);
                    prefetch_line_for_write(gdelta + at + j);
                    if (gz)
                        prefetch_line_for_write(gz + at + j);
                }
            for (int64_t k = 0; k < blocks; k++) {
                const int64_t d0 = k * LANES, width = nd - d0 < LANES ? nd - d0 : LANES;
                const int64_t at = (b * nt + t) * nd + d0;
                IN Ak = p.At + k * row;
                OUT gAk = gAt + k * row;
                OUT gh_k = gh + k * row;
                IN hs_t = hs + (k * (nt + 1) + t) * row;
                IN decay_t = decay + (k * nt + t) * row;
                float g[LANES], uu[LANES], out_u[LANES], out_dt[LANES];
                vec g_dtu = {0}, g_step = {0};
                load(gout, at, width, g);
                load(u, at, width, uu);
                if (z) {
                    /* out = y silu(x), x = z + z_bias: dL/dy = g silu(x),
                     * dL/dx = g y s (1 + x (1 - s)) with s = sigmoid(x). */
                    float x[LANES], s[LANES], s_bar[LANES], g_x[LANES];
                    load(z, (b * nt + t) * zs + d0, width, x);
                    V(x) += V(p.zbp + d0);
                    sigmoid(x, s, s_bar);
                    V(g_x) = V(g) * V(ys + (k * nt + t) * LANES) * V(s)
                             * (1.0f + V(x) * V(s_bar));
                    V(gzbp + d0) += V(g_x);
                    store(g_x, at, width, gz);
                    V(g) *= V(x) * V(s);
                }
                const vec gv = V(g), stepv = V(steps + (k * nt + t) * LANES);
                const vec dtuv = stepv * V(uu);
                V(gDp + d0) += gv * V(uu);
                for (int64_t n = 0; n < ns; n++) {
                    const vec a = V(decay_t + n * LANES);
                    const vec prev = V(hs_t + n * LANES);
                    const vec cur = V(hs_t + row + n * LANES);
                    const float bn = Bt[n], cn = Ct[n];
                    const vec g_h = V(gh_k + n * LANES) + gv * cn;
                    V(gCt + n * LANES) += gv * cur;
                    V(gBt + n * LANES) += g_h * dtuv;
                    g_dtu += g_h * bn;
                    /* d exp(step A) = exp(step A) (A d step + step d A) */
                    const vec g_arg = g_h * prev * a;
                    g_step += g_arg * V(Ak + n * LANES);
                    V(gAk + n * LANES) += g_arg * stepv;
                    V(gh_k + n * LANES) = g_h * a;
                }
                V(out_dt) = g_step + g_dtu * V(uu);
                if (softplus) {
                    /* d softplus(x) / dx = sigmoid(x), x = delta + delta_bias */
                    float raw[LANES], x[LANES], s[LANES];
                    load(delta, at, width, raw);
                    V(x) = V(raw) + V(p.dbp + d0);
                    sigmoid(x, s, NULL);
                    V(out_dt) *= V(s);
                }
                V(gdbp + d0) += V(out_dt);
                V(out_u) = gv * V(p.Dp + d0) + g_dtu * stepv;
                store(out_dt, at, width, gdelta);
                store(out_u, at, width, gu);
            }
            for (int64_t n = 0; n < ns; n++) {
                IN gBn = gBt + n * LANES;
                IN gCn = gCt + n * LANES;
                float sb = 0.0f, sc = 0.0f;
                for (int j = 0; j < LANES; j++) {
                    sb += gBn[j];
                    sc += gCn[j];
                }
                gB[(b * nt + t) * ns + n] += sb;
                gC[(b * nt + t) * ns + n] += sc;
            }
        }
    }
    for (int64_t d = 0; d < nd; d++) {
        for (int64_t n = 0; n < ns; n++)
            gA[d * ns + n] += gAt[((d / LANES) * ns + n) * LANES + d % LANES];
        gD[d] += gDp[d];
        if (gdelta_bias)
            gdelta_bias[d] += gdbp[d];
        if (gz_bias)
            gz_bias[d] += gzbp[d];
    }
    free(gCt);
    free(gBt);
    free(gh);
    free(ys);
    free(steps);
    free(decay);
    free(hs);
    free(gzbp);
    free(gdbp);
    free(gDp);
    free(gAt);
    free_blocked(p);
}
