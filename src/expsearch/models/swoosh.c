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
