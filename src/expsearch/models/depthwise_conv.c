/* Depthwise 1-D convolution over short sequences, forward and backward, channels last.
 *
 *     y[b, t, c] = bias[c] + sum_k w[k, c] x[b, t - left + k, c]    (zero outside 0..nt-1)
 *
 * The channel loop is innermost and contiguous, so every tap is one vectorised
 * multiply-add over a row of channels; the sequence stays in (batch, time, channel)
 * order, as the encoders hold it, so no transpose or copy is needed around the call.
 *
 * Layout (row-major, contiguous float32): x, y, gy, gx: (nb, nt, nc); w, gw: (nk, nc)
 * (the tap-major transpose of nn.Conv1d's (nc, 1, nk) weight); bias, gbias: (nc).
 * bias may be NULL. gx, gw and gbias are accumulated into: the caller zeroes them.
 * Built by models/native.py (see models/conv.py for when it is used).
 */
#include <stddef.h>
#include <stdint.h>

#define IN const float *restrict
#define OUT float *restrict

/* The taps k of output step t whose input step s = t - left + k lies in 0 .. nt - 1. */
static void taps_inside(int64_t t, int64_t nt, int64_t nk, int64_t left, int64_t *first,
                        int64_t *last)
{
    *first = left - t > 0 ? left - t : 0;
    *last = nt + left - t < nk ? nt + left - t : nk;
}

void conv_forward(IN x, IN w, IN bias, OUT y, int64_t nb, int64_t nt, int64_t nc, int64_t nk,
                  int64_t left)
{
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t t = 0; t < nt; t++) {
            OUT yt = y + (b * nt + t) * nc;
            for (int64_t c = 0; c < nc; c++)
                yt[c] = bias == NULL ? 0.0f : bias[c];
            int64_t first, last;
            taps_inside(t, nt, nk, left, &first, &last);
            for (int64_t k = first; k < last; k++) {
                IN xs = x + (b * nt + t - left + k) * nc;
                IN wk = w + k * nc;
                for (int64_t c = 0; c < nc; c++)
                    yt[c] += wk[c] * xs[c];
            }
        }
    }
}

void conv_backward(IN x, IN w, IN gy, OUT gx, OUT gw, OUT gbias, int64_t nb, int64_t nt,
                   int64_t nc, int64_t nk, int64_t left)
{
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t t = 0; t < nt; t++) {
            IN gyt = gy + (b * nt + t) * nc;
            if (gbias != NULL)
                for (int64_t c = 0; c < nc; c++)
                    gbias[c] += gyt[c];
            int64_t first, last;
            taps_inside(t, nt, nk, left, &first, &last);
            for (int64_t k = first; k < last; k++) {
                const int64_t s = t - left + k;
                IN xs = x + (b * nt + s) * nc;
                IN wk = w + k * nc;
                OUT gxs = gx + (b * nt + s) * nc;
                OUT gwk = gw + k * nc;
                for (int64_t c = 0; c < nc; c++) {
                    gxs[c] += wk[c] * gyt[c];
                    gwk[c] += gyt[c] * xs[c];
                }
            }
        }
    }
}
