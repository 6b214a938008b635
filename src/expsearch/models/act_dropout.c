/* A feed-forward layer's hidden activation with its linear layer's bias and the dropout
 * after it, in one pass each way (models/act_dropout.py, `act_dropout`):
 *
 *     y_tc = mask_tc * f(h_tc + b_c),     gh_tc = gy_tc * mask_tc * f'(h_tc + b_c),
 *     gb_c = sum_t gh_tc
 *
 * f: kind 0, Zipformer's Swoosh with params (offset, slope, shift), softplus(x - offset)
 * - slope x - shift; kind 1, the exact GELU x Phi(x) (RetNet's FFN), params unused.
 * The mask is dropout.h's, element t nc + c of a call that starts at draw `first`: the
 * same mask the dropout module's own call would draw, made again in the backward rather
 * than stored. threshold 0 and *scale 1: no dropout.
 *
 * Why: the unfused layer writes four (B, T, hidden) tensors (the addmm's output, which
 * it first fills with the broadcast bias; the activation; the mask; the product) and
 * reads them back each way; at width 64 each is 0.7-1 MB, and four of them no longer fit
 * a core's L2. Layout: h, y, gy, gh (nrows, nc); b, gb (nc); params 3 floats; scale 1.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dropout.h"
#include "vector.h"

#define SWOOSH 0
#define GELU 1
#define SQRT1_2 0.70710678118654752f

void act_dropout_forward(const float *restrict h, const float *restrict b,
                         const float *restrict params, const float *restrict scale,
                         float *restrict y, int64_t nrows, int64_t nc, int64_t seed,
                         int64_t first, int64_t threshold, int64_t kind)
{
    const float offset = params[0], slope = params[1], shift = params[2];
    float *mask = malloc(nc * sizeof(float));
    uint64_t draws[MASK_RANGE_MAX / 4 + 2];
    for (int64_t t = 0; t < nrows; t++) {
        row_mask(mask, draws, t * nc, nc, seed, first, threshold, *scale);
        const float *restrict ht = h + t * nc;
        float *restrict yt = y + t * nc;
        if (kind == SWOOSH)
            for (int64_t c = 0; c < nc; c++) {
                const float x = ht[c] + b[c], z = x - offset;
                yt[c] = mask[c] * (fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))) - slope * x - shift);
            }
        else
            for (int64_t c = 0; c < nc; c++) {
                const float x = ht[c] + b[c];
                yt[c] = mask[c] * 0.5f * x * (1.0f + erff(x * SQRT1_2));
            }
    }
    free(mask);
}

/* The bias gradient sums nrows terms per channel: blocked (vector.h, flush_sums). */
void act_dropout_backward(const float *restrict h, const float *restrict b,
                          const float *restrict params, const float *restrict scale,
                          const float *restrict gy, float *restrict gh, float *restrict gb,
                          int64_t nrows, int64_t nc, int64_t seed, int64_t first,
                          int64_t threshold, int64_t kind)
{
    const float offset = params[0], slope = params[1];
    const float inv_root_2pi = 0.3989422804014327f;
    float *mask = malloc(nc * sizeof(float));
    float *block = calloc(nc, sizeof(float));
    double *total = calloc(nc, sizeof(double));
    uint64_t draws[MASK_RANGE_MAX / 4 + 2];
    for (int64_t t = 0; t < nrows; t++) {
        row_mask(mask, draws, t * nc, nc, seed, first, threshold, *scale);
        const float *restrict ht = h + t * nc;
        const float *restrict gt = gy + t * nc;
        float *restrict out = gh + t * nc;
        if (kind == SWOOSH)
            for (int64_t c = 0; c < nc; c++) {
                /* exp's argument capped: -ffast-math assumes no infinities, and 1 / (1 +
                 * inf) would not be 0 there; at 80 the sigmoid is 0 to float32 precision. */
                const float sig = 1.0f / (1.0f + expf(fminf(offset - ht[c] - b[c], 80.0f)));
                out[c] = gt[c] * mask[c] * (sig - slope);
            }
        else
            for (int64_t c = 0; c < nc; c++) {
                const float x = ht[c] + b[c];
                const float cdf = 0.5f * (1.0f + erff(x * SQRT1_2));
                out[c] = gt[c] * mask[c] * (cdf + x * inv_root_2pi * expf(-0.5f * x * x));
            }
        for (int64_t c = 0; c < nc; c++)
            block[c] += out[c];
        if ((t + 1) % SUM_BLOCK == 0 || t + 1 == nrows)
            flush_sums(block, total, nc);
    }
    for (int64_t c = 0; c < nc; c++)
        gb[c] = (float)total[c];
    free(total);
    free(block);
    free(mask);
}
