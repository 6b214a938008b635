/* Zipformer's Bypass with its sub-layer's dropout: a residual connection with a learned
 * per-channel scale c, in one pass each way (models/residual.py, `residual_dropout`):
 *
 *     out_tc = x_tc + c_c (mask_tc y_tc),   gy_tc = g_tc c_c mask_tc,
 *     gc_c = sum_t g_tc mask_tc y_tc
 *
 * x's gradient is g itself. The mask is dropout.h's, element t nc + c of a call that
 * starts at draw `first`: the dropout module's own (models/dropout.py), made again in
 * the backward rather than stored, whole rows at a time (up to MASK_RANGE_MAX elements).
 *
 * Why: unfused, the dropout writes its mask and the product and the Bypass's addcmul a
 * third tensor, and the backward reads them in four more passes (the mask's product,
 * the scale's product and its reduction over rows); at width 64 each is (B, T, 64)
 * floats, 0.3 MB a batch, where passes and allocations cost more than their arithmetic.
 * Layout: x, y, out, g, gy (nrows, nc); c, gc (nc); scale: the kept elements' factor,
 * 1 float. Single-threaded on purpose.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dropout.h"
#include "vector.h"

/* Whole rows per mask: as many as MASK_RANGE_MAX elements hold, at least one. */
static int64_t rows_per_mask(int64_t nc)
{
    return nc >= MASK_RANGE_MAX ? 1 : MASK_RANGE_MAX / nc;
}

void residual_forward(IN x, IN y, IN c, IN scale, OUT out, int64_t nrows, int64_t nc,
                      int64_t seed, int64_t first, int64_t threshold)
{
    const int64_t per = rows_per_mask(nc);
    float *mask = malloc(sizeof(float) * per * nc);
    uint64_t draws[MASK_RANGE_MAX / 4 + 2];
    for (int64_t t0 = 0; t0 < nrows; t0 += per) {
        const int64_t rows = nrows - t0 < per ? nrows - t0 : per;
        row_mask(mask, draws, t0 * nc, rows * nc, seed, first, threshold, *scale);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t at = (t0 + r) * nc;
            IN m = mask + r * nc;
            for (int64_t ch = 0; ch < nc; ch++)
                out[at + ch] = x[at + ch] + c[ch] * (m[ch] * y[at + ch]);
        }
    }
    free(mask);
}

/* The scale's gradient sums nrows terms per channel: blocked (vector.h, flush_sums). */
void residual_backward(IN g, IN y, IN c, IN scale, OUT gy, OUT gc, int64_t nrows, int64_t nc,
                       int64_t seed, int64_t first, int64_t threshold)
{
    const int64_t per = rows_per_mask(nc);
    float *mask = malloc(sizeof(float) * per * nc);
    float *block = calloc(nc, sizeof(float));
    double *total = calloc(nc, sizeof(double));
    uint64_t draws[MASK_RANGE_MAX / 4 + 2];
    for (int64_t t0 = 0; t0 < nrows; t0 += per) {
        const int64_t rows = nrows - t0 < per ? nrows - t0 : per;
        row_mask(mask, draws, t0 * nc, rows * nc, seed, first, threshold, *scale);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t t = t0 + r, at = t * nc;
            IN m = mask + r * nc;
            for (int64_t ch = 0; ch < nc; ch++) {
                const float gm = g[at + ch] * m[ch];
                gy[at + ch] = gm * c[ch];
                block[ch] += gm * y[at + ch];
            }
            if ((t + 1) % SUM_BLOCK == 0 || t + 1 == nrows)
                flush_sums(block, total, nc);
        }
    }
    for (int64_t ch = 0; ch < nc; ch++)
        gc[ch] = (float)total[ch];
    free(total);
    free(block);
    free(mask);
}
