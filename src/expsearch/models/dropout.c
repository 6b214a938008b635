/* Dropout masks from a counter-based generator, in one pass.
 *
 *     r_g = splitmix64(seed + (first + g + 1) * GOLDEN)         for g = 0 .. ceil(n / 4) - 1
 *     mask[4 g + j] = ((r_g >> 16 j) & 0xffff) >= threshold ? *scale : 0      (j = 0 .. 3)
 *
 * Each 64-bit draw gives four 16-bit ones; `first` is how many 64-bit draws the module
 * has used before this call, so a module's masks depend only on its seed and its own
 * calls. models/dropout.py computes the same with NumPy when there is no C compiler.
 * Layout: mask (n) float32, written; scale: one float32. Built by models/native.py; the
 * generator is in dropout.h.
 */
#include <stdint.h>

#include "dropout.h"

void dropout_mask(float *restrict mask, const float *restrict scale, int64_t n, int64_t seed,
                  int64_t first, int64_t threshold)
{
    uint64_t draws[MASK_RANGE_MAX / 4 + 2];
    for (int64_t from = 0; from < n; from += MASK_RANGE_MAX) {
        const int64_t count = n - from < MASK_RANGE_MAX ? n - from : MASK_RANGE_MAX;
        mask_range(mask + from, draws, from, count, seed, first, threshold, *scale);
    }
}
