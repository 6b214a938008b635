/* Zipformer's Swoosh activations, forward and backward, in one pass each.
 *
 *     y = softplus(x - offset) - slope * x - shift        (SwooshL: 4, 0.08, 0.035;
 *     dy/dx = sigmoid(x - offset) - slope                  SwooshR: 1, 0.08, 0.313261687)
 *
 * softplus(z) = max(z, 0) + log1p(exp(-|z|)), which neither overflows nor loses
 * small values; with -ffast-math gcc vectorises expf and log1pf through libmvec.
 * Layout: x, y, gy, gx contiguous float32 (n); params: offset, slope, shift (float32).
 * Built by models/native.py (see models/swoosh.py for when it is used).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dropout.h"

void swoosh_forward(const float *restrict x, const float *restrict params, float *restrict y,
                    int64_t n)
{
    const float offset = params[0], slope = params[1], shift = params[2];
    for (int64_t i = 0; i < n; i++) {
        const float z = x[i] - offset;
        y[i] = fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))) - slope * x[i] - shift;
    }
}

void swoosh_backward(const float *restrict x, const float *restrict params,
                     const float *restrict gy, float *restrict gx, int64_t n)
{
    const float offset = params[0], slope = params[1];
    /* exp's argument is capped: -ffast-math assumes no infinities, and 1 / (1 + inf)
     * would not be 0 there; at 80 the sigmoid is already 0 to float32 precision. */
    for (int64_t i = 0; i < n; i++)
        gx[i] = gy[i] * (1.0f / (1.0f + expf(fminf(offset - x[i], 80.0f))) - slope);
}

/* Zipformer's FFN hidden activation with its linear layer's bias and the dropout after it,
 * in one pass each way (models/swoosh.py, `swoosh_dropout`):
 *
 *     y_tc = mask_tc * swoosh(h_tc + b_c)
 *     gh_tc = gy_tc * mask_tc * (sigmoid(h_tc + b_c - offset) - slope),  gb_c = sum_t gh_tc
 *
 * The mask is dropout.h's, element t nc + c of a call that starts at draw `first`: the
 * same mask the module's own call would draw, regenerated in the backward rather than
 * stored. threshold 0 and kept 1 (*scale): no dropout. Layout: h, y, gy, gh (nrows, nc);
 * b, gb (nc); params: offset, slope, shift; scale: the kept elements' factor. */
/* The mask of one row of nc elements starting at element `from`, MASK_RANGE_MAX at a time. */
static void row_mask(float *restrict mask, uint64_t *restrict draws, int64_t from, int64_t nc,
                     int64_t seed, int64_t first, int64_t threshold, float kept)
{
    for (int64_t c = 0; c < nc; c += MASK_RANGE_MAX) {
        const int64_t count = nc - c < MASK_RANGE_MAX ? nc - c : MASK_RANGE_MAX;
        mask_range(mask + c, draws, from + c, count, seed, first, threshold, kept);
    }
}

void swoosh_dropout_forward(const float *restrict h, const float *restrict b,
                            const float *restrict params, const float *restrict scale,
                            float *restrict y, int64_t nrows, int64_t nc, int64_t seed,
                            int64_t first, int64_t threshold)
{
    const float offset = params[0], slope = params[1], shift = params[2];
    float *mask = malloc(nc * sizeof(float));
    uint64_t draws[MASK_RANGE_MAX / 4 + 2];
    for (int64_t t = 0; t < nrows; t++) {
        row_mask(mask, draws, t * nc, nc, seed, first, threshold, *scale);
        const float *restrict ht = h + t * nc;
        float *restrict yt = y + t * nc;
        for (int64_t c = 0; c < nc; c++) {
            const float x = ht[c] + b[c], z = x - offset;
            yt[c] = mask[c] * (fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))) - slope * x - shift);
        }
    }
    free(mask);
}

/* The bias gradient sums nrows terms per channel: in float over blocks of rows, each
 * block's sum added in double. */
#define BLOCK 64

void swoosh_dropout_backward(const float *restrict h, const float *restrict b,
                             const float *restrict params, const float *restrict scale,
                             const float *restrict gy, float *restrict gh, float *restrict gb,
                             int64_t nrows, int64_t nc, int64_t seed, int64_t first,
                             int64_t threshold)
{
    const float offset = params[0], slope = params[1];
    float *mask = malloc(nc * sizeof(float));
    float *block = calloc(nc, sizeof(float));
    double *total = calloc(nc, sizeof(double));
    uint64_t draws[MASK_RANGE_MAX / 4 + 2];
    for (int64_t t = 0; t < nrows; t++) {
        row_mask(mask, draws, t * nc, nc, seed, first, threshold, *scale);
        const float *restrict ht = h + t * nc;
        const float *restrict gt = gy + t * nc;
        float *restrict out = gh + t * nc;
        for (int64_t c = 0; c < nc; c++) {
            /* exp's argument capped as in swoosh_backward */
            const float sig = 1.0f / (1.0f + expf(fminf(offset - ht[c] - b[c], 80.0f)));
            out[c] = gt[c] * mask[c] * (sig - slope);
            block[c] += out[c];
        }
        if ((t + 1) % BLOCK == 0 || t + 1 == nrows)
            for (int64_t c = 0; c < nc; c++) {
                total[c] += block[c];
                block[c] = 0.0f;
            }
    }
    for (int64_t c = 0; c < nc; c++)
        gb[c] = (float)total[c];
    free(total);
    free(block);
    free(mask);
}
