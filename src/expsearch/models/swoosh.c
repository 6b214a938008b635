/* Zipformer's Swoosh activations, forward and backward, in one pass each.
 *
 *     y = softplus(x - offset) - slope * x - shift        (SwooshL: 4, 0.08, 0.035;
 *     dy/dx = sigmoid(x - offset) - slope                  SwooshR: 1, 0.08, 0.313261687)
 *
 * In LANES-wide vectors with vector.h's exp and softplus (written per element, gcc
 * called libm's scalar log1pf for each on machines whose libmvec has none, such as
 * AVX2 ones); the last n % LANES elements through a zero-padded vector.
 * Layout: x, y, gy, gx contiguous float32 (n); params: offset, slope, shift (float32).
 * Built by models/native.py (see models/swoosh.py for when it is used).
 */
#include <stdint.h>
#include <string.h>

#include "vector.h"

static inline vec swoosh(vec x, IN params)
{
    return vsoftplus(x - params[0]) - params[1] * x - params[2];
}

/* sigmoid(x - offset) - slope; exp's argument capped so that 1 + e stays finite
 * (-ffast-math assumes no infinities): at 80 the sigmoid is 0 to float32 precision. */
static inline vec swoosh_slope(vec x, IN params)
{
    const vec arg = params[0] - x;
    return 1.0f / (1.0f + vexp(select(arg > 80.0f, splat(80.0f), arg))) - params[1];
}

void swoosh_forward(IN x, IN params, OUT y, int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        V(y + i) = swoosh(V(x + i), params);
    if (i < n) {
        float tail[LANES] = {0};
        memcpy(tail, x + i, sizeof(float) * (n - i));
        V(tail) = swoosh(V(tail), params);
        memcpy(y + i, tail, sizeof(float) * (n - i));
    }
}

void swoosh_backward(IN x, IN params, IN gy, OUT gx, int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        V(gx + i) = V(gy + i) * swoosh_slope(V(x + i), params);
    if (i < n) {
        float tail[LANES] = {0}, g[LANES] = {0};
        memcpy(tail, x + i, sizeof(float) * (n - i));
        memcpy(g, gy + i, sizeof(float) * (n - i));
        V(tail) = V(g) * swoosh_slope(V(tail), params);
        memcpy(gx + i, tail, sizeof(float) * (n - i));
    }
}
