/* Mamba-1 selective scan, forward and backward, vectorised across channels.
 *
 *     h_t = exp(dt_t A_d) * h_{t-1} + dt_t u_t B_t,     y_t = C_t . h_t + D_d u_t
 *
 * Each batch row runs its recurrence for a block of LANES channels at once: the
 * channels are the vector lanes (u, dt and y are contiguous in the channel), and
 * the state is d_state vectors of LANES in L1, one per state index n, so every
 * operation of the inner loop is one vector operation and no sum crosses lanes.
 * (The previous version ran one (row, channel) pair at a time with the state
 * indices as lanes, which cost a sum across lanes per step.) Channels past the
 * last are padded with u = dt = 0, whose state stays 0 and whose gradients are 0.
 *
 * The backward pass recomputes the states of a block rather than storing the
 * forward's, so nothing beyond the inputs is kept for autograd. Its sums over
 * channels (gB, gC) are collected per lane over the blocks of a row and summed
 * across lanes once per row; its sums over the state (the gradients of dt and u)
 * are `vec` variables, which gcc keeps in registers where an array would make
 * every step of the sum a store and a reload.
 *
 * Layout (row-major, contiguous float32):
 *   u, dt, y, gu, gdt: (nb, nt, nd)   A, gA: (nd, ns)   B, C, gB, gC: (nb, nt, ns)
 *   D, gD: (nd)
 * gA, gB, gC and gD are accumulated into: the caller zeroes them.
 * Single-threaded on purpose: a shard trains on one core (see models/scan.py).
 * Built by models/native.py; exp is vectorised through glibc's libmvec.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16

#define IN const float *restrict
#define OUT float *restrict

/* A vector of LANES floats (unaligned): accumulators of this type stay in registers. */
typedef float vec __attribute__((vector_size(4 * LANES), aligned(4)));
#define V(p) (*(vec *)(p))

/* A transposed into blocks of LANES channels, (blocks, ns, LANES), and D padded to
 * (blocks * LANES); lanes past the last channel are 0. */
static void block_params(IN A, IN D, int64_t nd, int64_t ns, OUT At, OUT Dp)
{
    const int64_t blocks = (nd + LANES - 1) / LANES;
    memset(At, 0, sizeof(float) * blocks * ns * LANES);
    memset(Dp, 0, sizeof(float) * blocks * LANES);
    for (int64_t d = 0; d < nd; d++) {
        for (int64_t n = 0; n < ns; n++)
            At[((d / LANES) * ns + n) * LANES + d % LANES] = A[d * ns + n];
        Dp[d] = D[d];
    }
}

/* LANES values of src from index `at`, `width` of them real, the rest 0. A full block is
 * one vector load: the lane-by-lane form, which only the last block of a channel count
 * that is not a multiple of LANES needs, compiles to scalar loads and branches that cost
 * the forward a fifth of its time. */
static inline void load(IN src, int64_t at, int64_t width, OUT out)
{
    if (width == LANES) {
        V(out) = V(src + at);
        return;
    }
    for (int j = 0; j < LANES; j++)
        out[j] = j < width ? src[at + j] : 0.0f;
}

static inline void store(IN values, int64_t at, int64_t width, OUT dst)
{
    if (width == LANES) {
        V(dst + at) = V(values);
        return;
    }
    for (int64_t j = 0; j < width; j++)
        dst[at + j] = values[j];
}

void scan_forward(IN u, IN dt, IN A, IN B, IN C, IN D, OUT y, int64_t nb, int64_t nt,
                  int64_t nd, int64_t ns)
{
    const int64_t blocks = (nd + LANES - 1) / LANES;
    float *At = malloc(sizeof(float) * blocks * ns * LANES);
    float *Dp = malloc(sizeof(float) * blocks * LANES);
    float *h = malloc(sizeof(float) * ns * LANES);
    block_params(A, D, nd, ns, At, Dp);
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t k = 0; k < blocks; k++) {
            const int64_t d0 = k * LANES, width = nd - d0 < LANES ? nd - d0 : LANES;
            IN Ak = At + k * ns * LANES;
            IN Dk = Dp + k * LANES;
            memset(h, 0, sizeof(float) * ns * LANES);
            for (int64_t t = 0; t < nt; t++) {
                const int64_t at = (b * nt + t) * nd + d0;
                IN Bt = B + (b * nt + t) * ns;
                IN Ct = C + (b * nt + t) * ns;
                float uu[LANES], step[LANES], dtu[LANES], acc[LANES];
                load(u, at, width, uu);
                load(dt, at, width, step);
                for (int j = 0; j < LANES; j++) {
                    dtu[j] = step[j] * uu[j];
                    acc[j] = Dk[j] * uu[j];
                }
                for (int64_t n = 0; n < ns; n++) {
                    IN An = Ak + n * LANES;
                    OUT hn = h + n * LANES;
                    const float bn = Bt[n], cn = Ct[n];
                    for (int j = 0; j < LANES; j++) {
                        hn[j] = expf(step[j] * An[j]) * hn[j] + dtu[j] * bn;
                        acc[j] += cn * hn[j];
                    }
                }
                store(acc, at, width, y);
            }
        }
    }
    free(h);
    free(Dp);
    free(At);
}

void scan_backward(IN u, IN dt, IN A, IN B, IN C, IN D, IN gy, OUT gu, OUT gdt, OUT gA,
                   OUT gB, OUT gC, OUT gD, int64_t nb, int64_t nt, int64_t nd, int64_t ns)
{
    const int64_t blocks = (nd + LANES - 1) / LANES, row = ns * LANES;
    float *At = malloc(sizeof(float) * blocks * row);
    float *Dp = malloc(sizeof(float) * blocks * LANES);
    float *gAt = calloc(blocks * row, sizeof(float));
    float *gDp = calloc(blocks * LANES, sizeof(float));
    float *hs = malloc(sizeof(float) * (nt + 1) * row);  /* hs[t + 1] = h_t, hs[0] = 0 */
    float *decay = malloc(sizeof(float) * nt * row);      /* exp(dt_t A) */
    float *gh = malloc(sizeof(float) * row);
    float *gBl = malloc(sizeof(float) * nt * row);        /* gB, gC per lane of a row */
    float *gCl = malloc(sizeof(float) * nt * row);
    block_params(A, D, nd, ns, At, Dp);
    for (int64_t b = 0; b < nb; b++) {
        memset(gBl, 0, sizeof(float) * nt * row);
        memset(gCl, 0, sizeof(float) * nt * row);
        for (int64_t k = 0; k < blocks; k++) {
            const int64_t d0 = k * LANES, width = nd - d0 < LANES ? nd - d0 : LANES;
            IN Ak = At + k * row;
            IN Dk = Dp + k * LANES;
            OUT gAk = gAt + k * row;
            OUT gDk = gDp + k * LANES;
            memset(hs, 0, sizeof(float) * row);
            for (int64_t t = 0; t < nt; t++) {
                const int64_t at = (b * nt + t) * nd + d0;
                IN Bt = B + (b * nt + t) * ns;
                float uu[LANES], step[LANES], dtu[LANES];
                load(u, at, width, uu);
                load(dt, at, width, step);
                for (int j = 0; j < LANES; j++)
                    dtu[j] = step[j] * uu[j];
                for (int64_t n = 0; n < ns; n++) {
                    IN An = Ak + n * LANES;
                    IN prev = hs + t * row + n * LANES;
                    OUT next = hs + (t + 1) * row + n * LANES;
                    OUT a = decay + t * row + n * LANES;
                    const float bn = Bt[n];
                    for (int j = 0; j < LANES; j++) {
                        a[j] = expf(step[j] * An[j]);
                        next[j] = a[j] * prev[j] + dtu[j] * bn;
                    }
                }
            }
            /* gh carries dL/dh_t through the recurrence, already multiplied by the next
             * step's decay: dL/dh_t = gy_t C_t + exp(dt_{t+1} A) dL/dh_{t+1}. */
            memset(gh, 0, sizeof(float) * row);
            for (int64_t t = nt - 1; t >= 0; t--) {
                const int64_t at = (b * nt + t) * nd + d0;
                IN Bt = B + (b * nt + t) * ns;
                IN Ct = C + (b * nt + t) * ns;
                float g[LANES], uu[LANES], step[LANES], dtu[LANES];
                float out_u[LANES], out_dt[LANES];
                vec g_dtu = {0}, g_step = {0};
                load(gy, at, width, g);
                load(u, at, width, uu);
                load(dt, at, width, step);
                for (int j = 0; j < LANES; j++) {
                    dtu[j] = step[j] * uu[j];
                    gDk[j] += g[j] * uu[j];
                }
                const vec gv = V(g), dtuv = V(dtu), stepv = V(step);
                for (int64_t n = 0; n < ns; n++) {
                    const vec a = V(decay + t * row + n * LANES);
                    const vec prev = V(hs + t * row + n * LANES);
                    const vec cur = V(hs + (t + 1) * row + n * LANES);
                    const float bn = Bt[n], cn = Ct[n];
                    const vec g_h = V(gh + n * LANES) + gv * cn;
                    V(gCl + t * row + n * LANES) += gv * cur;
                    V(gBl + t * row + n * LANES) += g_h * dtuv;
                    g_dtu += g_h * bn;
                    /* d exp(step A) = exp(step A) (A d step + step d A) */
                    const vec g_arg = g_h * prev * a;
                    g_step += g_arg * V(Ak + n * LANES);
                    V(gAk + n * LANES) += g_arg * stepv;
                    V(gh + n * LANES) = g_h * a;
                }
                V(out_dt) = g_step + g_dtu * V(uu);
                V(out_u) = gv * V(Dk) + g_dtu * stepv;
                store(out_dt, at, width, gdt);
                store(out_u, at, width, gu);
            }
        }
        for (int64_t t = 0; t < nt; t++) {
            for (int64_t n = 0; n < ns; n++) {
                IN gBn = gBl + t * row + n * LANES;
                IN gCn = gCl + t * row + n * LANES;
                float sb = 0.0f, sc = 0.0f;
                for (int j = 0; j < LANES; j++) {
                    sb += gBn[j];
                    sc += gCn[j];
                }
                gB[(b * nt + t) * ns + n] += sb;
                gC[(b * nt + t) * ns + n] += sc;
            }
        }
    }
    for (int64_t d = 0; d < nd; d++) {
        for (int64_t n = 0; n < ns; n++)
            gA[d * ns + n] += gAt[((d / LANES) * ns + n) * LANES + d % LANES];
        gD[d] += gDp[d];
    }
    free(gCl);
    free(gBl);
    free(gh);
    free(decay);
    free(hs);
    free(gDp);
    free(gAt);
    free(Dp);
    free(At);
}
