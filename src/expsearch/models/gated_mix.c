/* The xLSTM block's two directions mixed and gated before its down-projection, in one
 * pass each way (models/gated_mix.py, `gated_mix`):
 *
 *     m_tc = a h_tc + b r_tc,   x_tc = z_tc + zb_c,   out_tc = m_tc silu(x_tc)
 *
 * and back, with s = sigmoid(x) and q = silu(x) = x s:
 *
 *     gh = g q a,   gr = g q b,   gz = g m s (1 + x (1 - s)),
 *     gzb_c = sum_t gz_tc,   ga = sum g q h,   gb = sum g q r
 *
 * Why: in PyTorch that is six passes over (B, T, C) activations forward (two products, a
 * sum, the bias, SiLU, the gate) and about ten backward (with the scalars' and the bias's
 * reductions), at width 64 C = 128, for a few flops per element.
 * Layout (row-major float32): h, r, out, g, gh, gr, gz (nrows, nc); z (nrows, zs), its
 * first nc columns read (a half of the block's up-projection, in place); zb, gzb (nc);
 * a, b, ga, gb: one float each. Single-threaded on purpose.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "vector.h"

void gated_mix_forward(IN h, IN r, IN z, IN zb, IN a, IN b, OUT out, int64_t nrows,
                       int64_t nc, int64_t zs)
{
    const float wa = *a, wb = *b;
    for (int64_t t = 0; t < nrows; t++) {
        IN ht = h + t * nc;
        IN rt = r + t * nc;
        IN zt = z + t * zs;
        OUT ot = out + t * nc;
        for (int64_t c = 0; c < nc; c++) {
            const float x = zt[c] + zb[c];
            ot[c] = (wa * ht[c] + wb * rt[c]) * (x * sigmoid_capped(x));
        }
    }
}

/* The bias gradient sums nrows terms per channel: blocked (vector.h, flush_sums); the
 * scalars' sum every element in double. */
void gated_mix_backward(IN h, IN r, IN z, IN zb, IN a, IN b, IN g, OUT gh, OUT gr, OUT gz,
                        OUT gzb, OUT ga, OUT gb, int64_t nrows, int64_t nc, int64_t zs)
{
    const float wa = *a, wb = *b;
    float *block = calloc(nc, sizeof(float));
    double *total = calloc(nc, sizeof(double));
    double sum_a = 0.0, sum_b = 0.0;
    for (int64_t t = 0; t < nrows; t++) {
        IN ht = h + t * nc;
        IN rt = r + t * nc;
        IN zt = z + t * zs;
        IN gt = g + t * nc;
        float row_a = 0.0f, row_b = 0.0f;
        for (int64_t c = 0; c < nc; c++) {
            const float x = zt[c] + zb[c], s = sigmoid_capped(x), q = x * s;
            const float gq = gt[c] * q, m = wa * ht[c] + wb * rt[c];
            gh[t * nc + c] = gq * wa;
            gr[t * nc + c] = gq * wb;
            const float gx = gt[c] * m * silu_slope(x);
            gz[t * nc + c] = gx;
            block[c] += gx;
            row_a += gq * ht[c];
            row_b += gq * rt[c];
        }
        sum_a += row_a;
        sum_b += row_b;
        if ((t + 1) % SUM_BLOCK == 0 || t + 1 == nrows)
            flush_sums(block, total, nc);
    }
    for (int64_t c = 0; c < nc; c++)
        gzb[c] = (float)total[c];
    *ga = (float)sum_a;
    *gb = (float)sum_b;
    free(total);
    free(block);
}
