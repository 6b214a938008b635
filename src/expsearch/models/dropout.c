/* Dropout masks from a counter-based generator, in one pass.
 *
 *     r_g = splitmix64(seed + (first + g + 1) * GOLDEN)         for g = 0 .. ceil(n / 4) - 1
 *     mask[4 g + j] = ((r_g >> 16 j) & 0xffff) >= threshold ? *scale : 0      (j = 0 .. 3)
 *
 * Each 64-bit draw gives four 16-bit ones; `first` is how many 64-bit draws the module
 * has used before this call, so a module's masks depend only on its seed and its own
 * calls. models/dropout.py computes the same with NumPy when there is no C compiler.
 * Layout: mask (n) float32, written; scale: one float32. Built by models/native.py.
 */
#include <stdint.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL

static inline uint64_t splitmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dropout_mask(float *restrict mask, const float *restrict scale, int64_t n, int64_t seed,
                  int64_t first, int64_t threshold)
{
    const float kept = *scale;
    const uint64_t start = (uint64_t)seed + ((uint64_t)first + 1) * GOLDEN;
    const uint32_t cut = (uint32_t)threshold;
    const int64_t whole = n / 4;
    for (int64_t g = 0; g < whole; g++) {
        const uint64_t r = splitmix64(start + (uint64_t)g * GOLDEN);
        for (int j = 0; j < 4; j++)
            mask[4 * g + j] = ((uint32_t)(r >> (16 * j)) & 0xffffu) >= cut ? kept : 0.0f;
    }
    if (whole * 4 < n) {
        const uint64_t r = splitmix64(start + (uint64_t)whole * GOLDEN);
        for (int64_t i = whole * 4; i < n; i++)
            mask[i] = ((uint32_t)(r >> (16 * (i - whole * 4))) & 0xffffu) >= cut ? kept : 0.0f;
    }
}
