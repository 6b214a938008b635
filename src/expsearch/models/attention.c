/* Zipformer's self-attention core with a relative-position bias, forward and backward,
 * one (row, head) at a time (models/attention_kernel.py calls it; models/zipformer.py
 * gives the PyTorch reference `attention_reference`). Per head, with q, k, v the head's
 * slices of the fused projection and b its bias table over clipped distances:
 *
 *     S_nm = q_n . k_m / sqrt(d) + b[clip(m - n, -R, R) + R]     (keys m with keep[m])
 *     P_n  = softmax_m(S_n),        O_n = sum_m P_nm v_m
 *
 * Why a kernel: at the sizes searched (T <= 30, head size 32) a (row, head) is a T x T
 * problem that fits in L1, while the PyTorch form runs a dozen passes over (B, H, T, *)
 * tensors each way, plus the copies between the projection's (B, T, 3, H, d) layout and
 * (B, H, T, d) and back (the backward's `cat` of the three gradients): about an eighth of
 * a Zipformer training step on one core for a few MFLOP. The forward keeps P for the
 * backward (when one will run), which reads it instead of recomputing the softmax.
 *
 * Layout (row-major float32): qkv and its gradient (nb, nt, 3, nh, nd), the projection's
 * output read in place; y and its gradient (nb, nt, nh nd), the layout the output
 * projection takes; bias and its gradient (nh, 2 nr + 1); keep (nb, nt) bytes, nonzero
 * where a key is valid (each row keeps >= 1); weights, P, (nb, nh, nt, nt). Masked keys get weight exactly 0 (no
 * infinities: -ffast-math assumes there are none). Single-threaded on purpose.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

typedef struct {
    int64_t nb, nt, nh, nd, nr;
} Dims;

/* The bias table's index for query n and key m. */
static inline int64_t distance(int64_t n, int64_t m, int64_t nr)
{
    const int64_t r = m - n;
    return (r < -nr ? -nr : r > nr ? nr : r) + nr;
}

/* Per-call scratch: the bias by (head, query, key) (nh x T x np), made once per call,
 * and its gradient summed over the batch (same shape); one batch row's key mask as 0/1
 * floats; for one (row, head) K^T / sqrt(d) and V^T (d, np), the weights P and the
 * scores' gradient G by rows (T x np), and one column of each. */
typedef struct {
    float *Bias, *GB, *keep, *Kt, *Vt, *P, *G, *colP, *colG;
} Scratch;

static Scratch scratch_new(Dims z, IN bias)
{
    const int64_t nt = z.nt, np = padded(nt);
    /* calloc: the padding columns of Kt and Vt must read as 0. */
    float *block = calloc(2 * z.nh * nt * np + nt + 2 * z.nd * np + 2 * nt * np + 2 * np,
                          sizeof(float));
    Scratch s = {.Bias = block};
    s.GB = s.Bias + z.nh * nt * np;
    s.keep = s.GB + z.nh * nt * np;
    s.Kt = s.keep + nt;
    s.Vt = s.Kt + z.nd * np;
    s.P = s.Vt + z.nd * np;
    s.G = s.P + nt * np;
    s.colP = s.G + nt * np;
    s.colG = s.colP + np;
    for (int64_t hd = 0; bias && hd < z.nh; hd++) /* the backward passes none */
        for (int64_t n = 0; n < nt; n++)
            for (int64_t m = 0; m < nt; m++)
                s.Bias[(hd * nt + n) * np + m] =
                    bias[hd * (2 * z.nr + 1) + distance(n, m, z.nr)];
    return s;
}

/* Batch row b's key mask as floats (into s.keep). */
static void load_keep(const uint8_t *keep_b, int64_t nt, Scratch s)
{
    for (int64_t m = 0; m < nt; m++)
        s.keep[m] = keep_b[m] ? 1.0f : 0.0f;
}

/* Row n of P (into P_n): scores from q_n and K^T, the bias row, softmax over the kept
 * keys. Branch-free, so that the loops (expf included) vectorise: the maximum is taken
 * over kept keys only, and a masked key's exponent is clamped to <= 0 before its
 * weight is multiplied by 0. */
static void weights_row(IN q_n, IN bias_n, Dims z, Scratch s, OUT P_n)
{
    const int64_t nt = z.nt;
    row_times(q_n, s.Kt, z.nd, padded(nt), nt, P_n);
    float top = -3.0e38f; /* below any finite score; no infinities under -ffast-math */
    for (int64_t m = 0; m < nt; m++) {
        P_n[m] += bias_n[m];
        top = fmaxf(top, s.keep[m] > 0.0f ? P_n[m] : -3.0e38f);
    }
    float sum = 0.0f;
    for (int64_t m = 0; m < nt; m++) {
        P_n[m] = expf(fminf(P_n[m] - top, 0.0f)) * s.keep[m];
        sum += P_n[m];
    }
    const float inv = 1.0f / sum;
    for (int64_t m = 0; m < nt; m++)
        P_n[m] *= inv;
}

/* K^T / sqrt(d) of head hd of one batch row (k_b: its first key). */
static void prepare(IN k_b, Dims z, Scratch s)
{
    const int64_t np = padded(z.nt), step = 3 * z.nh * z.nd;
    const float inv_root = 1.0f / sqrtf((float)z.nd);
    for (int64_t t = 0; t < z.nt; t++)
        for (int64_t j = 0; j < z.nd; j++)
            s.Kt[j * np + t] = k_b[t * step + j] * inv_root;
}

/* `weights` (nb, nh, nt, nt) receives P for the backward; NULL when none will run. */
void attention_forward(IN qkv, IN bias, const uint8_t *keep, OUT y, OUT weights, int64_t nb,
                       int64_t nt, int64_t nh, int64_t nd, int64_t nr)
{
    const Dims z = {nb, nt, nh, nd, nr};
    const int64_t step = 3 * nh * nd, width = nh * nd, np = padded(nt);
    Scratch s = scratch_new(z, bias);
    for (int64_t b = 0; b < nb; b++) {
        IN row = qkv + b * nt * step;
        load_keep(keep + b * nt, nt, s);
        if (b + 1 < nb) /* the next row's inputs into cache meanwhile (vector.h) */
            prefetch(row + nt * step, nt * step);
        for (int64_t hd = 0; hd < nh; hd++) {
            IN q = row + hd * nd;
            IN k = row + width + hd * nd;
            IN v = row + 2 * width + hd * nd;
            prepare(k, z, s);
            for (int64_t n = 0; n < nt; n++) {
                weights_row(q + n * step, s.Bias + (hd * nt + n) * np, z, s, s.P);
                combine(s.P, v, step, nt, nd, y + (b * nt + n) * width + hd * nd);
                if (weights)
                    memcpy(weights + ((b * nh + hd) * nt + n) * nt, s.P, nt * sizeof(float));
            }
        }
    }
    free(s.Bias);
}

void attention_backward(IN qkv, IN weights, IN gy, OUT gqkv, OUT gbias, int64_t nb,
                        int64_t nt, int64_t nh, int64_t nd, int64_t nr)
{
    const Dims z = {nb, nt, nh, nd, nr};
    const int64_t step = 3 * nh * nd, width = nh * nd, np = padded(nt), nbias = 2 * nr + 1;
    const float inv_root = 1.0f / sqrtf((float)nd);
    Scratch s = scratch_new(z, NULL); /* no bias table: P comes saved */
    for (int64_t b = 0; b < nb; b++) {
        IN row = qkv + b * nt * step;
        IN grow = gy + b * nt * width;
        float *out = gqkv + b * nt * step;
        if (b + 1 < nb) { /* the next row's inputs and outputs into cache meanwhile */
            prefetch(row + nt * step, nt * step);
            prefetch(grow + nt * width, nt * width);
            prefetch(weights + (b + 1) * nh * nt * nt, nh * nt * nt);
            prefetch(out + nt * step, nt * step);
        }
        for (int64_t hd = 0; hd < nh; hd++) {
            IN q = row + hd * nd;
            IN k = row + width + hd * nd;
            IN v = row + 2 * width + hd * nd;
            IN g = grow + hd * nd;
            IN P_h = weights + (b * nh + hd) * nt * nt;
            transpose_rows(v, step, nt, nd, s.Vt);
            /* Row n: dL/dP_n = g_n V^T; through the softmax dL/dS_nm = P_nm (dL/dP_nm -
             * sum_u P_nu dL/dP_nu) (into G); dL/dq_n = dL/dS_n K / sqrt(d). */
            for (int64_t n = 0; n < nt; n++) {
                IN P = P_h + n * nt;
                float *G = s.G + n * np;
                float *GB = s.GB + (hd * nt + n) * np;
                row_times(g + n * width, s.Vt, nd, np, nt, G);
                float dot = 0.0f;
                for (int64_t m = 0; m < nt; m++)
                    dot += P[m] * G[m];
                for (int64_t m = 0; m < nt; m++) {
                    G[m] = P[m] * (G[m] - dot) * inv_root;
                    GB[m] += G[m];
                }
                combine(G, k, step, nt, nd, out + n * step + hd * nd);
            }
            /* Column m: dL/dv_m = sum_n P_nm g_n, dL/dk_m = sum_n dL/dS_nm q_n / sqrt(d). */
            for (int64_t m = 0; m < nt; m++) {
                for (int64_t n = 0; n < nt; n++) {
                    s.colP[n] = P_h[n * nt + m];
                    s.colG[n] = s.G[n * np + m];
                }
                combine(s.colP, g, width, nt, nd, out + m * step + 2 * width + hd * nd);
                combine(s.colG, q, step, nt, nd, out + m * step + width + hd * nd);
            }
        }
    }
    /* G above is dL/dS / sqrt(d), so that dq and dk come scaled; the bias takes dL/dS. */
    const float root = sqrtf((float)nd);
    for (int64_t hd = 0; hd < nh; hd++) {
        for (int64_t i = 0; i < nbias; i++)
            gbias[hd * nbias + i] = 0.0f;
        for (int64_t n = 0; n < nt; n++)
            for (int64_t m = 0; m < nt; m++)
                gbias[hd * nbias + distance(n, m, nr)] += s.GB[(hd * nt + n) * np + m] * root;
    }
    free(s.Bias);
}
