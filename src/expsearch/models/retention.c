/* RetNet's multi-scale retention core, forward and backward, one (row, head) at a time
 * (models/retention_kernel.py calls it; models/retnet.py gives the formulation and the
 * PyTorch reference `retention_parallel`). Per head, with cos/sin RoPE tables and the
 * row-normalised decay matrix D given:
 *
 *     Q = RoPE(q),  K = RoPE(k) / sqrt(d),   S = Q K^T,   P = S * D
 *     a_n = max(sum_m |P_nm|, 1)   (a constant to the backward, as the reference detaches it)
 *     O = (P / a) V,               y_n = O_n / sqrt(mean_j O_nj^2 + 1e-6)
 *
 * Why a kernel: at the sizes searched (T <= 30, head size 32, value size 64) a (row,
 * head) is a T x T problem that fits in L1, while the PyTorch form runs about thirty
 * passes over (B, H, T, *) tensors forward and backward, plus the transposes between
 * the projections' (B, T, H d) layout and (B, H, T, d): about a third of a RetNet
 * training step on one core for a few MFLOP. The backward recomputes S, P and O rather
 * than keeping them from the forward.
 *
 * Layout (row-major float32): q, k and their gradients (nb, nt, nh nd); v, y and their
 * gradients (nb, nt, nh ne): the projections' outputs, read in place; cos and sin
 * (nt, nd / 2); D (nh, nt, nt) per row of the batch, `dstride` floats apart (0: one D
 * shared by every row, the unpadded case). Padded keys and values enter only through
 * D's zero columns. Single-threaded on purpose: a shard trains on one core.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

typedef struct {
    int64_t nb, nt, nh, nd, ne, dstride;
} Dims;

/* Per-call scratch for one (row, head): Q and K by rows and K^T (d, np), V^T (e, np);
 * the weights P / a and their gradient by rows (T x np); the output's gradient by rows;
 * a few vectors. */
typedef struct {
    float *Q, *K, *Kt, *Vt, *A, *G, *gO, *y, *tmp, *colA, *colG, *scale, *rms;
} Scratch;

static Scratch scratch_new(Dims z)
{
    const int64_t nt = z.nt, nd = z.nd, ne = z.ne, np = padded(nt);
    /* calloc: the padding columns of Kt and Vt must read as 0. */
    float *block = calloc(2 * nt * nd + nd * np + ne * np + 2 * nt * np + nt * ne + ne + nd
                              + 2 * np + 2 * nt,
                          sizeof(float));
    Scratch s = {.Q = block};
    s.K = s.Q + nt * nd;
    s.Kt = s.K + nt * nd;
    s.Vt = s.Kt + nd * np;
    s.A = s.Vt + ne * np;
    s.G = s.A + nt * np;
    s.gO = s.G + nt * np;
    s.y = s.gO + nt * ne;
    s.tmp = s.y + ne;
    s.colA = s.tmp + nd;
    s.colG = s.colA + np;
    s.scale = s.colG + np;
    s.rms = s.scale + nt;
    return s;
}

/* y = gain * RoPE(x) of one head vector: pair (i, i + half) turned by the angle whose
 * cosine and sine are c[i] and s[i]. */
static inline void rotate(IN x, IN c, IN s, int64_t half, float gain, OUT y)
{
    for (int64_t i = 0; i < half; i++) {
        const float a = x[i], b = x[i + half];
        y[i] = (a * c[i] - b * s[i]) * gain;
        y[i + half] = (a * s[i] + b * c[i]) * gain;
    }
}

/* The transpose of `rotate` (its backward): x = gain * RoPE^T(g). */
static inline void unrotate(IN g, IN c, IN s, int64_t half, float gain, OUT x)
{
    for (int64_t i = 0; i < half; i++) {
        const float a = g[i], b = g[i + half];
        x[i] = (a * c[i] + b * s[i]) * gain;
        x[i + half] = (b * c[i] - a * s[i]) * gain;
    }
}

/* Q, K and K^T of head `hd` of one batch row (q_b, k_b: its first step). */
static void prepare(IN q_b, IN k_b, IN cosT, IN sinT, int64_t hd, Dims z, Scratch s)
{
    const int64_t step = z.nh * z.nd, half = z.nd / 2;
    const float inv_root = 1.0f / sqrtf((float)z.nd);
    for (int64_t t = 0; t < z.nt; t++) {
        IN c = cosT + t * half;
        IN sn = sinT + t * half;
        rotate(q_b + t * step + hd * z.nd, c, sn, half, 1.0f, s.Q + t * z.nd);
        rotate(k_b + t * step + hd * z.nd, c, sn, half, inv_root, s.K + t * z.nd);
    }
    transpose_rows(s.K, z.nd, z.nt, z.nd, s.Kt);
}

/* Row n: the weights A_n = P_n / a_n (into s.A), a_n and the rms factor, and y_n. */
static void retain_row(int64_t n, IN D, IN v_head, Dims z, Scratch s, OUT y)
{
    const int64_t nt = z.nt, np = padded(nt);
    float *A = s.A + n * np;
    IN Dn = D + n * nt;
    row_times(s.Q + n * z.nd, s.Kt, z.nd, np, nt, A);
    float sum = 0.0f;
    for (int64_t m = 0; m < nt; m++) {
        A[m] *= Dn[m];
        sum += fabsf(A[m]);
    }
    const float a = fmaxf(sum, 1.0f);
    for (int64_t m = 0; m < nt; m++)
        A[m] /= a;
    combine(A, v_head, z.nh * z.ne, nt, z.ne, y);
    float squares = 0.0f;
    for (int64_t j = 0; j < z.ne; j++)
        squares += y[j] * y[j];
    const float r = 1.0f / sqrtf(squares / (float)z.ne + 1e-6f);
    for (int64_t j = 0; j < z.ne; j++)
        y[j] *= r;
    s.scale[n] = a;
    s.rms[n] = r;
}

void retention_forward(IN q, IN k, IN v, IN cosT, IN sinT, IN decay, OUT y, int64_t nb,
                       int64_t nt, int64_t nh, int64_t nd, int64_t ne, int64_t dstride)
{
    const Dims z = {nb, nt, nh, nd, ne, dstride};
    Scratch s = scratch_new(z);
    for (int64_t b = 0; b < nb; b++) {
        IN q_b = q + b * nt * nh * nd;
        IN k_b = k + b * nt * nh * nd;
        IN v_b = v + b * nt * nh * ne;
        if (b + 1 < nb) { /* the next row's inputs into cache meanwhile (vector.h) */
            prefetch(q_b + nt * nh * nd, nt * nh * nd);
            prefetch(k_b + nt * nh * nd, nt * nh * nd);
            prefetch(v_b + nt * nh * ne, nt * nh * ne);
        }
        for (int64_t hd = 0; hd < nh; hd++) {
            IN D = decay + b * dstride + hd * nt * nt;
            prepare(q_b, k_b, cosT, sinT, hd, z, s);
            for (int64_t n = 0; n < nt; n++)
                retain_row(n, D, v_b + hd * ne, z, s, y + (b * nt + n) * nh * ne + hd * ne);
        }
    }
    free(s.Q);
}

void retention_backward(IN q, IN k, IN v, IN cosT, IN sinT, IN decay, IN gy, OUT gq, OUT gk,
                        OUT gv, int64_t nb, int64_t nt, int64_t nh, int64_t nd, int64_t ne,
                        int64_t dstride)
{
    const Dims z = {nb, nt, nh, nd, ne, dstride};
    const int64_t np = padded(nt), qstep = nh * nd, vstep = nh * ne, half = nd / 2;
    const float inv_root = 1.0f / sqrtf((float)nd);
    Scratch s = scratch_new(z);
    for (int64_t b = 0; b < nb; b++) {
        IN q_b = q + b * nt * qstep;
        IN k_b = k + b * nt * qstep;
        IN v_b = v + b * nt * vstep;
        IN gy_b = gy + b * nt * vstep;
        if (b + 1 < nb) { /* the next row's inputs and outputs into cache meanwhile */
            prefetch(q_b + nt * qstep, nt * qstep);
            prefetch(k_b + nt * qstep, nt * qstep);
            prefetch(v_b + nt * vstep, nt * vstep);
            prefetch(gy_b + nt * vstep, nt * vstep);
            prefetch(gq + (b + 1) * nt * qstep, nt * qstep);
            prefetch(gk + (b + 1) * nt * qstep, nt * qstep);
            prefetch(gv + (b + 1) * nt * vstep, nt * vstep);
        }
        for (int64_t hd = 0; hd < nh; hd++) {
            IN D = decay + b * dstride + hd * nt * nt;
            prepare(q_b, k_b, cosT, sinT, hd, z, s);
            transpose_rows(v_b + hd * ne, vstep, nt, ne, s.Vt);
            /* Row n: through the rms norm, dL/dO_n = r (g_n - y_n (g_n . y_n) / e); then
             * dL/dA_n = dL/dO_n V^T, and dL/dS_n = dL/dA_n / a_n * D_n (into s.G), so
             * dL/dQ_n = dL/dS_n K. The columns of A and G give dL/dV and dL/dK after. */
            for (int64_t n = 0; n < nt; n++) {
                retain_row(n, D, v_b + hd * ne, z, s, s.y);
                IN g = gy_b + n * vstep + hd * ne;
                float dot = 0.0f;
                for (int64_t j = 0; j < ne; j++)
                    dot += g[j] * s.y[j];
                const float r = s.rms[n], dot_e = dot / (float)ne;
                float *gO = s.gO + n * ne;
                for (int64_t j = 0; j < ne; j++)
                    gO[j] = r * (g[j] - s.y[j] * dot_e);
                float *G = s.G + n * np;
                row_times(gO, s.Vt, ne, np, nt, G);
                IN Dn = D + n * nt;
                const float inv_a = 1.0f / s.scale[n];
                for (int64_t m = 0; m < nt; m++)
                    G[m] *= inv_a * Dn[m];
                combine(G, s.K, nd, nt, nd, s.tmp);
                unrotate(s.tmp, cosT + n * half, sinT + n * half, half, 1.0f,
                         gq + (b * nt + n) * qstep + hd * nd);
            }
            /* Column m: dL/dV_m = sum_n A_nm dL/dO_n, dL/dK_m = sum_n dL/dS_nm Q_n. */
            for (int64_t m = 0; m < nt; m++) {
                for (int64_t n = 0; n < nt; n++) {
                    s.colA[n] = s.A[n * np + m];
                    s.colG[n] = s.G[n * np + m];
                }
                combine(s.colA, s.gO, ne, nt, ne, gv + (b * nt + m) * vstep + hd * ne);
                combine(s.colG, s.Q, nd, nt, nd, s.tmp);
                unrotate(s.tmp, cosT + m * half, sinT + m * half, half, inv_root,
                         gk + (b * nt + m) * qstep + hd * nd);
            }
        }
    }
    free(s.Q);
}
