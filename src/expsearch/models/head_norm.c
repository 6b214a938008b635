/* The xLSTM direction's output, forward and backward, one row at a time
 * (models/head_norm.py calls it and holds the PyTorch reference): a LayerNorm without
 * bias over each head's d channels (eps 1e-5, as F.layer_norm), a learned gain per
 * channel, and a learned skip of the conv branch:
 *
 *     hn_tc = (h_tc - mu_th) * s_th,  s_th = 1 / sqrt(var_th + eps)   (c in head h)
 *     y_tc  = hn_tc w_c + skip_c xc_tc
 *
 * Why a kernel: in PyTorch that is a layer norm, two products and a sum forward and
 * about ten passes backward (the norm's, the products', the gain's and skip's
 * reductions) over (B, T, inner) activations, twice per block; here one pass each way.
 * The forward keeps mu and s per (row, head) for the backward:
 *
 *     gw_c += g_tc hn_tc,   gskip_c += g_tc xc_tc,   gxc_tc = g_tc skip_c
 *     a = g w,  gh_tc = s_th (a_tc - mean_h(a) - hn_tc mean_h(a hn))
 *
 * Layout (row-major float32): h, xc, y, g, gh, gxc (nrows, nh nd); w, skip, gw, gskip
 * (nh nd); stats (nrows, nh, 2): mu then s. Single-threaded on purpose.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "vector.h"

#define EPS 1e-5f

void head_norm_forward(IN h, IN xc, IN w, IN skip, OUT y, OUT stats, int64_t nrows,
                       int64_t nh, int64_t nd)
{
    const int64_t nc = nh * nd;
    for (int64_t t = 0; t < nrows; t++) {
        for (int64_t hd = 0; hd < nh; hd++) {
            const int64_t o = t * nc + hd * nd;
            float sum = 0.0f;
            for (int64_t j = 0; j < nd; j++)
                sum += h[o + j];
            const float mu = sum / (float)nd;
            float squares = 0.0f;
            for (int64_t j = 0; j < nd; j++)
                squares += (h[o + j] - mu) * (h[o + j] - mu);
            const float s = 1.0f / sqrtf(squares / (float)nd + EPS);
            for (int64_t j = 0; j < nd; j++) {
                const int64_t c = hd * nd + j;
                y[o + j] = (h[o + j] - mu) * s * w[c] + skip[c] * xc[o + j];
            }
            stats[2 * (t * nh + hd)] = mu;
            stats[2 * (t * nh + hd) + 1] = s;
        }
    }
}

/* The gain's and skip's gradients sum nrows terms per channel: blocked (vector.h,
 * flush_sums). */
void head_norm_backward(IN h, IN xc, IN w, IN skip, IN stats, IN g, OUT gh, OUT gxc, OUT gw,
                        OUT gskip, int64_t nrows, int64_t nh, int64_t nd)
{
    const int64_t nc = nh * nd;
    double *total = calloc(2 * nc, sizeof(double)); /* gw, then gskip */
    float *block = calloc(2 * nc, sizeof(float));
    /* g w of one head, kept rounded: recomputed, its product could fuse into an FMA and
     * a - mean(a) would then not cancel exactly (a one-channel head's gradient is 0). */
    float *a = malloc(nd * sizeof(float));
    for (int64_t t0 = 0; t0 < nrows; t0 += SUM_BLOCK) {
        const int64_t t1 = t0 + SUM_BLOCK < nrows ? t0 + SUM_BLOCK : nrows;
        for (int64_t t = t0; t < t1; t++) {
            for (int64_t hd = 0; hd < nh; hd++) {
                const int64_t o = t * nc + hd * nd, c0 = hd * nd;
                const float mu = stats[2 * (t * nh + hd)], s = stats[2 * (t * nh + hd) + 1];
                float mean_a = 0.0f, mean_ahn = 0.0f;
                for (int64_t j = 0; j < nd; j++) {
                    const float hn = (h[o + j] - mu) * s;
                    a[j] = g[o + j] * w[c0 + j];
                    mean_a += a[j];
                    mean_ahn += a[j] * hn;
                    block[c0 + j] += g[o + j] * hn;
                    block[nc + c0 + j] += g[o + j] * xc[o + j];
                    gxc[o + j] = g[o + j] * skip[c0 + j];
                }
                mean_a /= (float)nd;
                mean_ahn /= (float)nd;
                for (int64_t j = 0; j < nd; j++) {
                    const float hn = (h[o + j] - mu) * s;
                    gh[o + j] = s * (a[j] - mean_a - hn * mean_ahn);
                }
            }
        }
        flush_sums(block, total, 2 * nc);
    }
    for (int64_t c = 0; c < nc; c++) {
        gw[c] = (float)total[c];
        gskip[c] = (float)total[nc + c];
    }
    free(a);
    free(block);
    free(total);
}
