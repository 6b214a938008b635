/* Zipformer's BiasNorm over the last dimension, forward and backward, one row at a time
 * (models/bias_norm.py calls it and holds the PyTorch reference):
 *
 *     r_t = 1 / sqrt(mean_c (x_tc - b_c)^2 + eps),    y_tc = x_tc * exp(g) * r_t
 *
 * Why a kernel: the PyTorch form is nine passes over the activations forward and about
 * a dozen backward (seven norms per Zipformer step at depth 1), where a row of 64-256
 * channels needs one pass each way. The forward keeps r_t for the backward:
 *
 *     dot_t = sum_c gy_tc x_tc,     k_t = exp(g) r_t^3 dot_t / C
 *     gx_tc = exp(g) r_t gy_tc - k_t (x_tc - b_c),   gb_c = sum_t k_t (x_tc - b_c)
 *     gg = sum_t exp(g) r_t dot_t                     (= sum gy * y)
 *
 * Layout (row-major float32): x, y, gy, gx (nrows, nc); b, gb (nc); g, eps, gg one
 * float each; r (nrows). Single-threaded on purpose: a shard trains on one core.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "vector.h"

void bias_norm_forward(IN x, IN b, IN g, IN eps, OUT y, OUT r, int64_t nrows, int64_t nc)
{
    const float scale = expf(*g);
    for (int64_t t = 0; t < nrows; t++) {
        IN xt = x + t * nc;
        float squares = 0.0f;
        for (int64_t c = 0; c < nc; c++)
            squares += (xt[c] - b[c]) * (xt[c] - b[c]);
        const float rt = 1.0f / sqrtf(squares / (float)nc + *eps);
        const float f = scale * rt;
        for (int64_t c = 0; c < nc; c++)
            y[t * nc + c] = xt[c] * f;
        r[t] = rt;
    }
}

/* The bias gradient sums nrows terms per channel: blocked (vector.h, flush_sums). */
void bias_norm_backward(IN x, IN b, IN g, IN r, IN gy, OUT gx, OUT gb, OUT gg, int64_t nrows,
                        int64_t nc)
{
    const float scale = expf(*g);
    double *gb_total = calloc(nc, sizeof(double));
    float *gb_block = calloc(nc, sizeof(float));
    double gg_total = 0.0;
    for (int64_t t0 = 0; t0 < nrows; t0 += SUM_BLOCK) {
        const int64_t t1 = t0 + SUM_BLOCK < nrows ? t0 + SUM_BLOCK : nrows;
        for (int64_t t = t0; t < t1; t++) {
            IN xt = x + t * nc;
            IN gt = gy + t * nc;
            float dot = 0.0f;
            for (int64_t c = 0; c < nc; c++)
                dot += gt[c] * xt[c];
            const float rt = r[t], f = scale * rt, k = f * rt * rt * dot / (float)nc;
            for (int64_t c = 0; c < nc; c++) {
                const float centred = xt[c] - b[c];
                gx[t * nc + c] = f * gt[c] - k * centred;
                gb_block[c] += k * centred;
            }
            gg_total += (double)(f * dot);
        }
        flush_sums(gb_block, gb_total, nc);
    }
    for (int64_t c = 0; c < nc; c++)
        gb[c] = (float)gb_total[c];
    *gg = (float)gg_total;
    free(gb_block);
    free(gb_total);
}
