/* Depthwise 1-D convolution over short sequences, forward and backward, channels last,
 * optionally followed by SiLU in the same pass:
 *
 *     pre[b, t, c] = bias[c] + sum_k w[k, c] x[b, t - left + k, c]   (zero outside 0..nt-1)
 *     y = pre, or silu(pre) = pre sigmoid(pre) (silu != 0)
 *
 * The channel loop is innermost and contiguous, so every tap is one vectorised
 * multiply-add over a row of channels; the sequence stays in (batch, time, channel)
 * order, as the encoders hold it, so no transpose or copy is needed around the call.
 * x's rows may be `xs` floats apart (xs >= nc): a half of a wider projection is read in
 * place. With SiLU the backward computes pre again, a row at a time, rather than keeping
 * it: BiMamba and xLSTM put a SiLU after their causal conv, which as a separate op was two
 * more passes each way over (B, T, C).
 *
 * Layout (row-major float32): x (nb, nt, xs), its first nc columns read; y, gy, gx:
 * (nb, nt, nc); w, gw: (nk, nc) (the tap-major transpose of nn.Conv1d's (nc, 1, nk)
 * weight); bias, gbias: (nc). bias may be NULL. gx, gw and gbias are accumulated into:
 * the caller zeroes them. Built by models/native.py (models/conv.py: when it is used).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vector.h"

/* The taps k of output step t whose input step s = t - left + k lies in 0 .. nt - 1. */
static void taps_inside(int64_t t, int64_t nt, int64_t nk, int64_t left, int64_t *first,
                        int64_t *last)
{
    *first = left - t > 0 ? left - t : 0;
    *last = nt + left - t < nk ? nt + left - t : nk;
}

/* pre (nc) of output step t of batch row b. */
static void conv_row(IN x, IN w, IN bias, OUT pre, int64_t b, int64_t t, int64_t nt,
                     int64_t nc, int64_t nk, int64_t left, int64_t xs)
{
    for (int64_t c = 0; c < nc; c++)
        pre[c] = bias == NULL ? 0.0f : bias[c];
    int64_t first, last;
    taps_inside(t, nt, nk, left, &first, &last);
    for (int64_t k = first; k < last; k++) {
        IN xr = x + (b * nt + t - left + k) * xs;
        IN wk = w + k * nc;
        for (int64_t c = 0; c < nc; c++)
            pre[c] += wk[c] * xr[c];
    }
}

void conv_forward(IN x, IN w, IN bias, OUT y, int64_t nb, int64_t nt, int64_t nc, int64_t nk,
                  int64_t left, int64_t xs, int64_t silu)
{
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t t = 0; t < nt; t++) {
            OUT yt = y + (b * nt + t) * nc;
            conv_row(x, w, bias, yt, b, t, nt, nc, nk, left, xs);
            if (silu)
                for (int64_t c = 0; c < nc; c++)
                    yt[c] *= sigmoid_capped(yt[c]);
        }
    }
}

void conv_backward(IN x, IN w, IN bias, IN gy, OUT gx, OUT gw, OUT gbias, int64_t nb,
                   int64_t nt, int64_t nc, int64_t nk, int64_t left, int64_t xs, int64_t silu)
{
    float *g = malloc(sizeof(float) * nc); /* dL/dpre of one row */
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t t = 0; t < nt; t++) {
            IN gyt = gy + (b * nt + t) * nc;
            IN gt = silu ? g : gyt;
            if (silu) {
                conv_row(x, w, bias, g, b, t, nt, nc, nk, left, xs);
                for (int64_t c = 0; c < nc; c++)
                    g[c] = gyt[c] * silu_slope(g[c]);
            }
            if (gbias != NULL)
                for (int64_t c = 0; c < nc; c++)
                    gbias[c] += gt[c];
            int64_t first, last;
            taps_inside(t, nt, nk, left, &first, &last);
            for (int64_t k = first; k < last; k++) {
                const int64_t s = t - left + k;
                IN xr = x + (b * nt + s) * xs;
                IN wk = w + k * nc;
                OUT gxs = gx + (b * nt + s) * nc;
                OUT gwk = gw + k * nc;
                for (int64_t c = 0; c < nc; c++) {
                    gxs[c] += wk[c] * gt[c];
                    gwk[c] += gt[c] * xr[c];
                }
            }
        }
    }
    free(g);
}
