/* The counter-based generator of the dropout masks (dropout.c writes masks with it;
 * act_dropout.c and residual.c make them inside their fused passes): draw g of a
 * call whose first 64-bit draw is `first` is splitmix64(seed + (first + g + 1) GOLDEN),
 * and element i of the call is kept when 16-bit part i % 4 of draw i / 4 is >= the
 * threshold. native.py puts this header's text in each kernel's cache key.
 */
#ifndef EXPSEARCH_DROPOUT_H
#define EXPSEARCH_DROPOUT_H

#include <stdint.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL

static inline uint64_t splitmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the masks read a draw's 16-bit parts as its uint16 halves in memory order"
#endif

/* Most elements per `mask_range` call: its caller's `draws` scratch holds
 * MASK_RANGE_MAX / 4 + 2 uint64. */
#define MASK_RANGE_MAX 4096

/* The mask (kept or 0) of elements from .. from + n - 1 (n <= MASK_RANGE_MAX) of a call,
 * into mask[0 .. n). The draws go to `draws` first, a loop gcc vectorises, and part
 * i % 4 of draw i / 4, (r >> 16 (i % 4)) & 0xffff, is the uint16 at index i of the
 * draws in memory (little-endian): a second vectorised loop. */
static inline void mask_range(float *restrict mask, uint64_t *restrict draws, int64_t from,
                              int64_t n, int64_t seed, int64_t first, int64_t threshold,
                              float kept)
{
    const uint64_t start = (uint64_t)seed + ((uint64_t)first + 1) * GOLDEN;
    const int64_t g0 = from / 4, groups = (from + n + 3) / 4 - g0;
    for (int64_t k = 0; k < groups; k++)
        draws[k] = splitmix64(start + (uint64_t)(g0 + k) * GOLDEN);
    const uint16_t *parts = (const uint16_t *)draws + (from - 4 * g0);
    const uint16_t cut = (uint16_t)(threshold > 0xffff ? 0xffff : threshold);
    const int all = threshold > 0xffff; /* p = 1: nothing is kept */
    for (int64_t i = 0; i < n; i++)
        mask[i] = !all && parts[i] >= cut ? kept : 0.0f;
}

/* The mask of one row of nc elements starting at element `from` of a call,
 * MASK_RANGE_MAX at a time (the fused kernels make a row's mask before its pass). */
static inline void row_mask(float *restrict mask, uint64_t *restrict draws, int64_t from,
                            int64_t nc, int64_t seed, int64_t first, int64_t threshold,
                            float kept)
{
    for (int64_t c = 0; c < nc; c += MASK_RANGE_MAX) {
        const int64_t count = nc - c < MASK_RANGE_MAX ? nc - c : MASK_RANGE_MAX;
        mask_range(mask + c, draws, from + c, count, seed, first, threshold, kept);
    }
}

#endif
