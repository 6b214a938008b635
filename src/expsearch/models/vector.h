/* Helpers of the C kernels: a LANES-wide float vector type (selective_scan.c, mlstm.c,
 * retention.c), its inline exp and lane sum (selective_scan.c, mlstm.c), a scalar
 * sigmoid and SiLU slope safe under -ffast-math (depthwise_conv.c, gated_mix.c), the
 * two products of the kernels that solve one small (T x T) problem per (row, head) in
 * L1 (mlstm.c, retention.c), a prefetch of a batch row's inputs (those and
 * attention.c, selective_scan.c) or of the next step's lines (selective_scan.c), and
 * the blocked per-channel sums of the kernels' parameter gradients (bias_norm.c,
 * head_norm.c, act_dropout.c, residual.c, gated_mix.c). native.py puts this header's
 * text in each kernel's cache key.
 *
 * Rows of a T x T matrix are padded to np = padded(T) floats, whole vectors, so a row
 * product runs over whole vectors; a transposed (d, np) matrix's padding columns must
 * read as 0 (the kernels calloc their scratch and write only columns < T).
 */
#ifndef EXPSEARCH_VECTOR_H
#define EXPSEARCH_VECTOR_H

#include <math.h>
#include <stdint.h>

#define IN const float *restrict
#define OUT float *restrict
/* A vector is one register of the machine the kernels are built on (-march=native): a
 * wider one is lowered by gcc to pieces that go through the stack, which on an AVX2
 * machine (16 lanes, 8 wide registers) made the retention kernel 2.5x slower. */
#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif

/* A vector of LANES floats (unaligned): accumulators of this type stay in registers. */
typedef float vec __attribute__((vector_size(4 * LANES), aligned(4)));
#define V(p) (*(vec *)(p))

/* A vector of LANES int32s, the masks of vector comparisons; (vec) and (ivec) casts
 * between the two reinterpret the bits. */
typedef int32_t ivec __attribute__((vector_size(4 * LANES), aligned(4)));

/* Lane-wise `mask ? a : b` for a comparison's mask (C has no vector ?:). */
static inline vec select(ivec mask, vec a, vec b)
{
    return (vec)(((ivec)a & mask) | ((ivec)b & ~mask));
}

/* Every lane v. */
static inline vec splat(float v)
{
    return (vec){0} + v;
}

/* exp of every lane, inline (Cephes' expf: 2^n times a degree-7 polynomial on
 * [-ln2/2, ln2/2], about 1 ulp), in whole-vector operations: written lane by lane, gcc
 * vectorised only parts of it and ran the range reduction one lane at a time on AVX2
 * (a third of the scan's time). libmvec's expf is a call: in the scan's inner loop gcc
 * spilled the loop's vector registers around every one. Below -87.3 (where float's exp
 * leaves the normal range) it gives 0, so a masked lane set to -3e38 (no infinities
 * under -ffast-math) gives exactly 0. */
static inline vec vexp(vec x)
{
    const ivec underflow = x < -87.3f;
    const vec xc = select(x > 88.3f, splat(88.3f), select(underflow, splat(-87.3f), x));
    /* n = round(xc / ln 2) by the float adder: adding 1.5 * 2^23 leaves n in the low
     * mantissa bits of t (|n| < 2^22), read back as an integer, where a truncating
     * conversion needed a sign test and a +-0.5 first. */
    const vec t = xc * 1.44269504088896341f + 12582912.0f;
    const ivec n = (ivec)t - 0x4B400000; /* the bits of 1.5 * 2^23 */
    const vec nf = __builtin_convertvector(n, vec);
    const vec r = (xc - nf * 0.693359375f) + nf * 2.12194440e-4f;
    /* The polynomial by Estrin's scheme: three short products in parallel, then two
     * steps, where Horner's form is a chain of seven dependent multiply-adds. */
    const vec r2 = r * r;
    const vec a = r * 1.6666665459e-1f + 5.0000001201e-1f;
    const vec b = r * 8.3334519073e-3f + 4.1665795894e-2f;
    const vec c = r * 1.9875691500e-4f + 1.3981999507e-3f;
    const vec p = r2 * ((c * r2 + b) * r2 + a) + r + 1.0f;
    /* p 2^n: n added to p's exponent bits. p is in [0.7, 1.5] and n in [-126, 127], so
     * the exponent stays that of a normal float. */
    return (vec)(((ivec)p + (n << 23)) & ~underflow);
}

/* 1 / (1 + exp(-v)); exp's argument capped so that it stays finite (-ffast-math assumes
 * no infinities): at 80 the sigmoid is 0 to float32 precision. */
static inline float sigmoid_capped(float v)
{
    return 1.0f / (1.0f + expf(fminf(-v, 80.0f)));
}

/* SiLU's slope, d (v sigmoid(v)) / dv = s (1 + v (1 - s)). For v >= 0, 1 - s is taken
 * as exp(-v) s rather than by the subtraction, whose cancellation near s = 1 is as
 * large as the division's rounding (under -ffast-math gcc divides by a reciprocal
 * estimate on AVX2), and v multiplies it. */
static inline float silu_slope(float v)
{
    const float e = expf(fminf(-v, 80.0f)), s = 1.0f / (1.0f + e);
    return s * (1.0f + v * (v >= 0.0f ? e * s : 1.0f - s));
}

/* The sum of a vector's lanes. */
static inline float hsum(vec v)
{
    float s = 0.0f;
    for (int j = 0; j < LANES; j++)
        s += v[j];
    return s;
}

/* Steps rounded up to whole vectors: the row stride of the T x T and (d, T) scratch. */
static inline int64_t padded(int64_t nt)
{
    return (nt + LANES - 1) / LANES * LANES;
}

/* out[j] = sum_{u < len} w[u] rows[u * stride + j] for j < nd: a weighted sum of len
 * vectors of nd, LANES of j at a time in registers (then the last nd % LANES). Even and
 * odd u go to separate accumulators, and two vectors of j run together: four
 * independent chains of adds, where one would wait on each add's latency. */
static inline void combine(IN w, IN rows, int64_t stride, int64_t len, int64_t nd, OUT out)
{
    int64_t j0 = 0;
    for (; j0 + 2 * LANES <= nd; j0 += 2 * LANES) {
        vec a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
        int64_t u = 0;
        for (; u + 1 < len; u += 2) {
            IN r = rows + u * stride + j0;
            a0 += w[u] * V(r);
            a1 += w[u] * V(r + LANES);
            b0 += w[u + 1] * V(r + stride);
            b1 += w[u + 1] * V(r + stride + LANES);
        }
        if (u < len) {
            a0 += w[u] * V(rows + u * stride + j0);
            a1 += w[u] * V(rows + u * stride + j0 + LANES);
        }
        V(out + j0) = a0 + b0;
        V(out + j0 + LANES) = a1 + b1;
    }
    for (; j0 + LANES <= nd; j0 += LANES) {
        vec a = {0}, b = {0};
        int64_t u = 0;
        for (; u + 1 < len; u += 2) {
            a += w[u] * V(rows + u * stride + j0);
            b += w[u + 1] * V(rows + (u + 1) * stride + j0);
        }
        if (u < len)
            a += w[u] * V(rows + u * stride + j0);
        V(out + j0) = a + b;
    }
    for (; j0 < nd; j0++) {
        float acc = 0.0f;
        for (int64_t u = 0; u < len; u++)
            acc += w[u] * rows[u * stride + j0];
        out[j0] = acc;
    }
}

/* row[u] = sum_j x[j] Mt[j, u] for u < len (rounded up to whole vectors): x times the
 * (nd, np) matrix Mt, a vector of LANES columns at a time, in four accumulators (j mod
 * 4) for the same reason as `combine`. */
static inline void row_times(IN x, IN Mt, int64_t nd, int64_t np, int64_t len, OUT row)
{
    for (int64_t u0 = 0; u0 < len; u0 += LANES) {
        vec a = {0}, b = {0}, c = {0}, d = {0};
        int64_t j = 0;
        for (; j + 3 < nd; j += 4) {
            IN m = Mt + j * np + u0;
            a += x[j] * V(m);
            b += x[j + 1] * V(m + np);
            c += x[j + 2] * V(m + 2 * np);
            d += x[j + 3] * V(m + 3 * np);
        }
        for (; j < nd; j++)
            a += x[j] * V(Mt + j * np + u0);
        V(row + u0) = (a + b) + (c + d);
    }
}

/* nt rows of nd floats, `stride` apart, transposed to (nd, np). */
static inline void transpose_rows(IN src, int64_t stride, int64_t nt, int64_t nd, OUT dst)
{
    const int64_t np = padded(nt);
    for (int64_t u = 0; u < nt; u++)
        for (int64_t j = 0; j < nd; j++)
            dst[j * np + u] = src[u * stride + j];
}

#define LINE_FLOATS 16 /* floats in a 64-byte cache line: one prefetch request each */

/* Asks for the n floats from p to be brought into cache, one request per 64-byte line,
 * without waiting for them: a kernel calls it on the next batch row's inputs while it
 * works on this one. Its (T x T) problems read each row's inputs as short strided runs
 * (20 steps of one head's 32 floats, 1.5 KB apart), too short for the hardware's stride
 * prefetcher: the loads waited on L3. */
static inline void prefetch(const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i += LINE_FLOATS)
        __builtin_prefetch(p + i, 0, 2);
}

/* The 64-byte line at p into L1, to be read (`prefetch_line`) or written
 * (`prefetch_line_for_write`) a step later: the scan walks a row's (T, channels) slices
 * one step at a time, each step a block of channels (one line) per tensor, 1-2 KB
 * apart, and waited on both its loads and the stores to its freshly allocated outputs
 * where `prefetch` of the whole row had already been asked for. */
static inline void prefetch_line(const float *p)
{
    __builtin_prefetch(p, 0, 3);
}

static inline void prefetch_line_for_write(float *p)
{
    __builtin_prefetch(p, 1, 3);
}

/* Per-channel sums over many rows (the bias, gain and skip gradients): each row adds
 * into a float `block`, and every SUM_BLOCK rows (and after the last) `flush_sums` adds
 * the block into a double `total` and clears it, so the float rounding grows with
 * SUM_BLOCK rather than with the number of rows. */
#define SUM_BLOCK 64

static inline void flush_sums(float *restrict block, double *restrict total, int64_t n)
{
    for (int64_t c = 0; c < n; c++) {
        total[c] += block[c];
        block[c] = 0.0f;
    }
}

#endif
