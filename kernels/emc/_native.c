/* Native CPU kernels of the EMC iteration: C, OpenMP threads, AVX2 + FMA vectors.
 *
 * Built on first use by _native.py (gcc -O3 -march=native -ffast-math -fopenmp) and
 * loaded with ctypes; ops.ops_for picks them on the CPU (the numba loops in _numba.py
 * where no compiler is).  The one trilinear locate step of this language is locate().
 *
 * Orientations are processed in tiles of CW = 32.  The log-likelihood / probability
 * matrix is stored tile-major, L[ch][d][c] for orientation r = ch*CW + c, so that every
 * tile's (frames x 32) block is contiguous: the photon products then read and write
 * whole 128-byte rows.  Both photon products are written as gathers (sparse row times
 * dense rows, summed in registers: block_times_tile), blocked so that the dense rows
 * they gather stay in the core's L1 cache: the likelihood by pixel (a block of pixels'
 * rows of the log-slice tile, 40 KB with Zen 5's 48 KB L1: PIXEL_BLOCK in _native.py),
 * the merge by frame (a block of frames' rows of the probability tile); each row of the
 * output is then read-modified-written once per block instead of every photon entry
 * reading a row from L2.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define CW 32
#define NV (CW / 8)

int emc_tile_width(void) { return CW; }

/* CPU seconds (all threads) spent in each phase since the last call (benchmarks/emc.py):
 * 0 expand (slices + log), 1 likelihood product, 2 merge photon sums, 3 merge splats,
 * 4 merge weights. */
static double phase_seconds[8];

void emc_phase_times(double *out) {
    for (int i = 0; i < 8; ++i) {
        out[i] = phase_seconds[i];
        phase_seconds[i] = 0.0;
    }
}

static inline double now(void) { /* this thread's CPU time: meaningful on a busy machine */
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static inline void add_phase(int i, double seconds) {
#pragma omp atomic
    phase_seconds[i] += seconds;
}

/* Lower corner (flat index into an s^3 C-order grid) and fractions of M q + center;
 * returns 0 when the point is outside [0, s-2] (no trilinear cell). Shared by slicing
 * and merging so both see exactly the same positions. */
static inline int locate(int64_t s, const double *m, const double *q, double center,
                         int64_t *base, double *fx, double *fy, double *fz) {
    double x = m[0] * q[0] + m[1] * q[1] + m[2] * q[2] + center;
    double y = m[3] * q[0] + m[4] * q[1] + m[5] * q[2] + center;
    double z = m[6] * q[0] + m[7] * q[1] + m[8] * q[2] + center;
    double fx0 = floor(x), fy0 = floor(y), fz0 = floor(z);
    int64_t ix = (int64_t)fx0, iy = (int64_t)fy0, iz = (int64_t)fz0;
    if (ix < 0 || iy < 0 || iz < 0 || ix > s - 2 || iy > s - 2 || iz > s - 2) return 0;
    *base = (ix * s + iy) * s + iz;
    *fx = x - fx0;
    *fy = y - fy0;
    *fz = z - fz0;
    return 1;
}

/* Trilinear value of model (s^3, C order) at M q + center; 0 outside [0, s-2]. */
static inline double trilinear(const double *model, int64_t s, const double *m, const double *q,
                               double center) {
    int64_t base;
    double fx, fy, fz;
    if (!locate(s, m, q, center, &base, &fx, &fy, &fz)) return 0.0;
    double gx = 1.0 - fx, gy = 1.0 - fy, gz = 1.0 - fz;
    const double *p = model + base;
    const int64_t sy = s, sx = s * s;
    return gx * (gy * (gz * p[0] + fz * p[1]) + fy * (gz * p[sy] + fz * p[sy + 1]))
         + fx * (gy * (gz * p[sx] + fz * p[sx + 1]) + fy * (gz * p[sx + sy] + fz * p[sx + sy + 1]));
}

#ifdef __AVX512F__
/* The rotation M (row-major 3x3) and center broadcast for locate8. */
typedef struct {
    __m512d m[9], c, hi, sd;
} frame8_t;

static inline frame8_t frame8(const double *m, double center, int64_t s) {
    frame8_t f;
    for (int i = 0; i < 9; ++i) f.m[i] = _mm512_set1_pd(m[i]);
    f.c = _mm512_set1_pd(center);
    f.hi = _mm512_set1_pd((double)(s - 2));
    f.sd = _mm512_set1_pd((double)s);
    return f;
}

/* locate() for the eight pixels t..t+7 at once: returns the mask of those inside, their
 * lower-corner flat indices (0 outside) and fractions.  The vector loops' one locate step. */
static inline __mmask8 locate8(const frame8_t *f, const double *qx, const double *qy,
                               const double *qz, int64_t t, __m256i *base, __m512d *fx,
                               __m512d *fy, __m512d *fz) {
    const __m512d zero = _mm512_setzero_pd();
    __m512d q0 = _mm512_loadu_pd(qx + t), q1 = _mm512_loadu_pd(qy + t), q2 = _mm512_loadu_pd(qz + t);
    __m512d x = _mm512_add_pd(_mm512_fmadd_pd(f->m[2], q2, _mm512_fmadd_pd(f->m[1], q1, _mm512_mul_pd(f->m[0], q0))), f->c);
    __m512d y = _mm512_add_pd(_mm512_fmadd_pd(f->m[5], q2, _mm512_fmadd_pd(f->m[4], q1, _mm512_mul_pd(f->m[3], q0))), f->c);
    __m512d z = _mm512_add_pd(_mm512_fmadd_pd(f->m[8], q2, _mm512_fmadd_pd(f->m[7], q1, _mm512_mul_pd(f->m[6], q0))), f->c);
    __m512d fx0 = _mm512_roundscale_pd(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512d fy0 = _mm512_roundscale_pd(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512d fz0 = _mm512_roundscale_pd(z, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __mmask8 in = _mm512_cmp_pd_mask(fx0, zero, _CMP_GE_OQ) & _mm512_cmp_pd_mask(fy0, zero, _CMP_GE_OQ)
                & _mm512_cmp_pd_mask(fz0, zero, _CMP_GE_OQ) & _mm512_cmp_pd_mask(fx0, f->hi, _CMP_LE_OQ)
                & _mm512_cmp_pd_mask(fy0, f->hi, _CMP_LE_OQ) & _mm512_cmp_pd_mask(fz0, f->hi, _CMP_LE_OQ);
    /* flat index of the lower corner, exact in double, 0 outside */
    __m512d based = _mm512_maskz_mov_pd(in, _mm512_fmadd_pd(_mm512_fmadd_pd(fx0, f->sd, fy0), f->sd, fz0));
    *base = _mm512_cvttpd_epi32(based);
    *fx = _mm512_sub_pd(x, fx0);
    *fy = _mm512_sub_pd(y, fy0);
    *fz = _mm512_sub_pd(z, fz0);
    return in;
}
#endif

#ifdef __AVX512F__
/* The corners (z, z + 1) at off from the lower corners bs[0..7] (0 outside: any in-range
 * index) of eight pixels, as z0 and z1: eight 128-bit loads (the pairs are adjacent) and
 * shuffles, instead of two gathers of eight. */
static inline void corner_pairs8(const double *model, const int32_t *bs, int64_t off, __m512d *z0,
                                 __m512d *z1) {
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    const double *p = model + off;
    __m512d lo = _mm512_castpd128_pd512(_mm_loadu_pd(p + bs[0]));
    lo = _mm512_insertf64x2(lo, _mm_loadu_pd(p + bs[1]), 1);
    lo = _mm512_insertf64x2(lo, _mm_loadu_pd(p + bs[2]), 2);
    lo = _mm512_insertf64x2(lo, _mm_loadu_pd(p + bs[3]), 3);
    __m512d hi = _mm512_castpd128_pd512(_mm_loadu_pd(p + bs[4]));
    hi = _mm512_insertf64x2(hi, _mm_loadu_pd(p + bs[5]), 1);
    hi = _mm512_insertf64x2(hi, _mm_loadu_pd(p + bs[6]), 2);
    hi = _mm512_insertf64x2(hi, _mm_loadu_pd(p + bs[7]), 3);
    *z0 = _mm512_permutex2var_pd(lo, even, hi);
    *z1 = _mm512_permutex2var_pd(lo, odd, hi);
}
#endif

/* One slice over n pixels (q given as three arrays qx, qy, qz of length n): out[t] = trilinear
 * model value at M q_t + center (0 outside), returns their sum.  With AVX-512, eight pixels
 * at a time, their corners read as (z, z + 1) pairs (corner_pairs8), the positions computed
 * a chunk of SPLAT_CHUNK pixels ahead and that chunk's corners prefetched (the model, 9.8
 * MB at 107^3, lives in L3: the reads waited on it); the same arithmetic as locate() +
 * trilinear() otherwise. */
#define SPLAT_CHUNK 64
static double slice_row(const double *restrict model, int64_t s, const double *m, int64_t n,
                        const double *restrict qx, const double *restrict qy,
                        const double *restrict qz, double center, float *restrict out) {
    double acc = 0.0;
    int64_t t = 0;
#ifdef __AVX512F__
    const frame8_t f = frame8(m, center, s);
    const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
    const int64_t sy = s, sx = s * s;
    __m512d accv = zero;
    int32_t base[2][SPLAT_CHUNK];
    double fr[2][3][SPLAT_CHUNK];
    __mmask8 inside[2][SPLAT_CHUNK / 8];
    const int64_t nvec = n / 8 * 8;
    int cur = 0;
    for (int64_t t0 = 0; t0 < nvec + SPLAT_CHUNK; t0 += SPLAT_CHUNK, cur ^= 1) {
        /* positions of the chunk at t0, its corners prefetched */
        for (int g = 0; g < SPLAT_CHUNK / 8; ++g) {
            int64_t tg = t0 + 8 * g;
            if (tg >= nvec) break;
            __m256i b0;
            __m512d fx, fy, fz;
            __mmask8 in = locate8(&f, qx, qy, qz, tg, &b0, &fx, &fy, &fz);
            inside[cur][g] = in;
            int32_t *bs = base[cur] + 8 * g;
            _mm256_storeu_si256((__m256i *)bs, b0);
            _mm512_storeu_pd(fr[cur][0] + 8 * g, fx);
            _mm512_storeu_pd(fr[cur][1] + 8 * g, fy);
            _mm512_storeu_pd(fr[cur][2] + 8 * g, fz);
            for (unsigned mk = in; mk; mk &= mk - 1) {
                const double *p = model + bs[__builtin_ctz(mk)];
                __builtin_prefetch(p);
                __builtin_prefetch(p + sy);
                __builtin_prefetch(p + sx);
                __builtin_prefetch(p + sx + sy);
            }
        }
        /* the values of the chunk before */
        if (t0 == 0) continue;
        const int prev = cur ^ 1;
        for (int g = 0; g < SPLAT_CHUNK / 8; ++g) {
            int64_t tg = t0 - SPLAT_CHUNK + 8 * g;
            if (tg >= nvec) break;
            __mmask8 in = inside[prev][g];
            const int32_t *bs = base[prev] + 8 * g;
            __m512d fx = _mm512_loadu_pd(fr[prev][0] + 8 * g), fy = _mm512_loadu_pd(fr[prev][1] + 8 * g),
                    fz = _mm512_loadu_pd(fr[prev][2] + 8 * g);
            __m512d p000, p001, p010, p011, p100, p101, p110, p111;
            corner_pairs8(model, bs, 0, &p000, &p001);
            corner_pairs8(model, bs, sy, &p010, &p011);
            corner_pairs8(model, bs, sx, &p100, &p101);
            corner_pairs8(model, bs, sx + sy, &p110, &p111);
            __m512d gy = _mm512_sub_pd(one, fy), gz = _mm512_sub_pd(one, fz);
            __m512d lo = _mm512_add_pd(_mm512_mul_pd(gy, _mm512_fmadd_pd(gz, p000, _mm512_mul_pd(fz, p001))),
                                       _mm512_mul_pd(fy, _mm512_fmadd_pd(gz, p010, _mm512_mul_pd(fz, p011))));
            __m512d up = _mm512_add_pd(_mm512_mul_pd(gy, _mm512_fmadd_pd(gz, p100, _mm512_mul_pd(fz, p101))),
                                       _mm512_mul_pd(fy, _mm512_fmadd_pd(gz, p110, _mm512_mul_pd(fz, p111))));
            __m512d v = _mm512_maskz_mov_pd(in, _mm512_fmadd_pd(fx, _mm512_sub_pd(up, lo), lo));
            accv = _mm512_add_pd(accv, v);
            _mm256_storeu_ps(out + tg, _mm512_cvtpd_ps(v));
        }
    }
    acc = _mm512_reduce_add_pd(accv);
    t = nvec;
#endif
    for (; t < n; ++t) {
        const double q[3] = {qx[t], qy[t], qz[t]};
        double v = trilinear(model, s, m, q, center);
        acc += v;
        out[t] = (float)v;
    }
    return acc;
}

/* Splats of one orientation's values at n pixels into a (s^3 C-order grid): value
 * v_t = vals[t * stride] * scale * wt[t] (pixels with v_t == 0 add nothing), or 1 where
 * vals is NULL (the interpolation weights), added with the eight trilinear weights of
 * M q_t + center.  With AVX-512 the positions and weights of eight pixels are computed at
 * a time; the adds are pixel by pixel (neighbouring pixels share corners), as four 128-bit
 * adds of (z, z + 1) pairs.  The volume (one per thread, 9.8 MB at 107^3) lives in L3, so
 * the positions and weights are computed a chunk of SPLAT_CHUNK pixels ahead of the adds
 * and that chunk's corners prefetched; a chunk's adds go in four interleaved runs of its
 * pixels (a fixed order). */
static void splat_row(double *restrict a, int64_t s, const double *m, int64_t n,
                      const double *restrict qx, const double *restrict qy, const double *restrict qz,
                      double center, const float *vals, int64_t stride, double scale,
                      const double *wt) {
    const int64_t sy = s, sx = s * s;
    int64_t t = 0;
#ifdef __AVX512F__
    const frame8_t f = frame8(m, center, s);
    const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0), sc = _mm512_set1_pd(scale);
    /* the weights of the corners (z, z + 1) of the four (x, y) edges, as pairs: one 128-bit
     * add each */
    const __m512i lo_pairs = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11),
                  hi_pairs = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    int32_t base[2][SPLAT_CHUNK];
    double w[2][4][2 * SPLAT_CHUNK] __attribute__((aligned(64)));
    __mmask8 inside[2][SPLAT_CHUNK / 8];
    const int64_t nvec = n / 8 * 8;
    int cur = 0;
    for (int64_t t0 = 0; t0 < nvec + SPLAT_CHUNK; t0 += SPLAT_CHUNK, cur ^= 1) {
        /* positions, weights and prefetches of the chunk at t0 */
        for (int g = 0; g < SPLAT_CHUNK / 8; ++g) {
            inside[cur][g] = 0;
            int64_t tg = t0 + 8 * g;
            if (tg >= nvec) continue;
            __m512d v = one;
            __mmask8 live = 0xff;
            if (vals) {
                float nv[8];
                for (int i = 0; i < 8; ++i) nv[i] = vals[(tg + i) * stride];
                v = _mm512_cvtps_pd(_mm256_loadu_ps(nv));
                live = _mm512_cmp_pd_mask(v, zero, _CMP_NEQ_UQ);
                if (!live) continue;
                v = _mm512_mul_pd(_mm512_mul_pd(v, sc), _mm512_loadu_pd(wt + tg));
            }
            __m256i b0;
            __m512d fx, fy, fz;
            __mmask8 in = live & locate8(&f, qx, qy, qz, tg, &b0, &fx, &fy, &fz);
            inside[cur][g] = in;
            if (!in) continue;
            int32_t *bs = base[cur] + 8 * g;
            _mm256_storeu_si256((__m256i *)bs, b0);
            __m512d gx = _mm512_sub_pd(one, fx), gy = _mm512_sub_pd(one, fy), gz = _mm512_sub_pd(one, fz);
            __m512d gxv = _mm512_mul_pd(gx, v), fxv = _mm512_mul_pd(fx, v);
            __m512d gg = _mm512_mul_pd(gxv, gy), gf = _mm512_mul_pd(gxv, fy);
            __m512d fg = _mm512_mul_pd(fxv, gy), ff = _mm512_mul_pd(fxv, fy);
            const __m512d edge[4] = {gg, gf, fg, ff};
            for (int e = 0; e < 4; ++e) {
                __m512d z0 = _mm512_mul_pd(edge[e], gz), z1 = _mm512_mul_pd(edge[e], fz);
                _mm512_store_pd(w[cur][e] + 16 * g, _mm512_permutex2var_pd(z0, lo_pairs, z1));
                _mm512_store_pd(w[cur][e] + 16 * g + 8, _mm512_permutex2var_pd(z0, hi_pairs, z1));
            }
            for (unsigned mk = in; mk; mk &= mk - 1) {
                const double *p = a + bs[__builtin_ctz(mk)];
                __builtin_prefetch(p, 1);
                __builtin_prefetch(p + sy, 1);
                __builtin_prefetch(p + sx, 1);
                __builtin_prefetch(p + sx + sy, 1);
            }
        }
        /* the adds of the chunk before */
        if (t0 == 0) continue;
        /* in four interleaved runs of the chunk's pixels (k, k + 16, k + 32, k + 48, k + 1, ...):
         * neighbouring pixels share corners, and one pixel's adds waiting on the last one's
         * stores made a chain through memory */
        const int prev = cur ^ 1;
        uint64_t live = 0;
        for (int g = 0; g < SPLAT_CHUNK / 8; ++g) live |= (uint64_t)inside[prev][g] << (8 * g);
        for (int j = 0; j < SPLAT_CHUNK; ++j) {
            {
                int k = (j & 3) * (SPLAT_CHUNK / 4) + (j >> 2);
                if (!((live >> k) & 1)) continue;
                double *p = a + base[prev][k];
                _mm_storeu_pd(p, _mm_add_pd(_mm_loadu_pd(p), _mm_load_pd(w[prev][0] + 2 * k)));
                _mm_storeu_pd(p + sy, _mm_add_pd(_mm_loadu_pd(p + sy), _mm_load_pd(w[prev][1] + 2 * k)));
                _mm_storeu_pd(p + sx, _mm_add_pd(_mm_loadu_pd(p + sx), _mm_load_pd(w[prev][2] + 2 * k)));
                _mm_storeu_pd(p + sx + sy, _mm_add_pd(_mm_loadu_pd(p + sx + sy), _mm_load_pd(w[prev][3] + 2 * k)));
            }
        }
    }
    t = nvec;
#endif
    for (; t < n; ++t) {
        double v = 1.0;
        if (vals) {
            float nv = vals[t * stride];
            if (nv == 0.0f) continue;
            v = nv * scale * wt[t];
        }
        const double q[3] = {qx[t], qy[t], qz[t]};
        int64_t b;
        double fx, fy, fz;
        if (!locate(s, m, q, center, &b, &fx, &fy, &fz)) continue;
        double gx = 1.0 - fx, gy = 1.0 - fy, gz = 1.0 - fz;
        double *p = a + b;
        p[0] += gx * gy * gz * v;
        p[1] += gx * gy * fz * v;
        p[sy] += gx * fy * gz * v;
        p[sy + 1] += gx * fy * fz * v;
        p[sx] += fx * gy * gz * v;
        p[sx + 1] += fx * gy * fz * v;
        p[sx + sy] += fx * fy * gz * v;
        p[sx + sy + 1] += fx * fy * fz * v;
    }
}

/* q (n x 3, pixel-major) as three arrays qx, qy, qz (3n doubles, for the vector loops). */
static double *split_q(const double *q, int64_t n) {
    double *out = malloc((size_t)(3 * n + 1) * sizeof(double));
    for (int64_t t = 0; t < n; ++t)
        for (int i = 0; i < 3; ++i) out[i * n + t] = q[3 * t + i];
    return out;
}

/* One tile row: CW = 32 floats in registers, two AVX-512 or four AVX2 vectors (a struct
 * of intrinsics: gcc keeps it in registers, where it spills a 128-byte GCC vector). */
#ifdef __AVX512F__
typedef struct {
    __m512 v0, v1;
} row_t;

static inline row_t row_load(const float *p) { return (row_t){_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16)}; }
static inline void row_store(float *p, row_t x) {
    _mm512_storeu_ps(p, x.v0);
    _mm512_storeu_ps(p + 16, x.v1);
}
static inline row_t row_zero(void) { return (row_t){_mm512_setzero_ps(), _mm512_setzero_ps()}; }
static inline row_t row_add(row_t x, row_t y) {
    return (row_t){_mm512_add_ps(x.v0, y.v0), _mm512_add_ps(x.v1, y.v1)};
}
static inline row_t row_fma(float w, row_t x, row_t y) { /* w x + y */
    __m512 s = _mm512_set1_ps(w);
    return (row_t){_mm512_fmadd_ps(s, x.v0, y.v0), _mm512_fmadd_ps(s, x.v1, y.v1)};
}
#else
typedef struct {
    __m256 v0, v1, v2, v3;
} row_t;

static inline row_t row_load(const float *p) {
    return (row_t){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24)};
}
static inline void row_store(float *p, row_t x) {
    _mm256_storeu_ps(p, x.v0);
    _mm256_storeu_ps(p + 8, x.v1);
    _mm256_storeu_ps(p + 16, x.v2);
    _mm256_storeu_ps(p + 24, x.v3);
}
static inline row_t row_zero(void) {
    __m256 z = _mm256_setzero_ps();
    return (row_t){z, z, z, z};
}
static inline row_t row_add(row_t x, row_t y) {
    return (row_t){_mm256_add_ps(x.v0, y.v0), _mm256_add_ps(x.v1, y.v1), _mm256_add_ps(x.v2, y.v2),
                   _mm256_add_ps(x.v3, y.v3)};
}
static inline row_t row_fma(float w, row_t x, row_t y) { /* w x + y */
    __m256 s = _mm256_set1_ps(w);
    return (row_t){_mm256_fmadd_ps(s, x.v0, y.v0), _mm256_fmadd_ps(s, x.v1, y.v1),
                   _mm256_fmadd_ps(s, x.v2, y.v2), _mm256_fmadd_ps(s, x.v3, y.v3)};
}
#endif

/* Photon counts of a sparse matrix (rows: frames, or pixels for the transposed counts) as
 * Dragonfly stores them, the columns holding one photon (ones, no value: most of them)
 * apart from the others (multi, with their counts), cut by column into nblocks blocks of nb
 * columns (see photon_lists() in _native.py, which builds them once per problem).  Block b
 * visits the rows row[seg[b]:seg[b + 1]] (blocked: those with entries in the block, or
 * all rows in the likelihood's first block, which writes every output row; the fewest
 * entries first, so that consecutive loops have the same length and their ends are
 * predicted; one block: every row in row order), and visit l has the entries
 * of its row in the block: ones[ones_ptr[l]:ones_ptr[l + 1]] and, with their counts,
 * multi[multi_ptr[l]:multi_ptr[l + 1]].  Blocked, the columns are uint16 byte offsets
 * of their rows from the block's first row (half the index stream of int32 columns, and
 * no shift), the ones padded to a multiple of 4 entries with offset nb * CW * 4: a zero
 * row after the block's nb rows; one block: int32 column indices. */
typedef struct {
    int64_t nblocks, nb;
    const int64_t *seg;        /* nblocks + 1: each block's first visit */
    const int32_t *row;        /* one per visit */
    const int64_t *ones_ptr;   /* visits + 1 */
    const void *ones;          /* uint16 (blocked) or int32 (one block) */
    const int64_t *multi_ptr;  /* visits + 1 */
    const void *multi;
    const float *counts;
} photons_t;

static inline const float *at_offset(const float *src, uint16_t bytes) {
    return (const float *)((const char *)src + bytes);
}

/* One block b of a sparse matrix times a tile of CW columns: for every row d,
 *   out[d][:] = (first ? first[:] : out[d][:]) + sum_j K_dj src[j][:]
 * over the row's entries in block b (src: the block's nb tile rows and a zero row after
 * them), each sum in registers (four independent row sums: the loop is bound by the add
 * latency otherwise).  Rows the block does not visit are left alone.  The block's
 * nb x 128 B of src stay in L1 across all the rows. */
static void block_times_tile(const photons_t *k, int64_t b, const float *src, const float *first,
                             float *out) {
    const int64_t *op = k->ones_ptr, *mp = k->multi_ptr;
    const int32_t *rows = k->row;
    const uint16_t *ix = k->ones, *mx = k->multi;
    const row_t b0 = first ? row_load(first) : row_zero();
    for (int64_t i = k->seg[b], iend = k->seg[b + 1]; i < iend; ++i) {
        int64_t j = op[i], end = op[i + 1], m = mp[i], mend = mp[i + 1];
        if (i + 8 < iend) { /* the output rows come in list order, not row order */
            __builtin_prefetch(out + (int64_t)rows[i + 8] * CW, 1);
            __builtin_prefetch(out + (int64_t)rows[i + 8] * CW + 16, 1);
        }
        row_t x0 = row_zero(), x1 = x0, x2 = x0, x3 = x0;
        for (; j < end; j += 4) {
            x0 = row_add(x0, row_load(at_offset(src, ix[j])));
            x1 = row_add(x1, row_load(at_offset(src, ix[j + 1])));
            x2 = row_add(x2, row_load(at_offset(src, ix[j + 2])));
            x3 = row_add(x3, row_load(at_offset(src, ix[j + 3])));
        }
        for (; m < mend; ++m) x0 = row_fma(k->counts[m], row_load(at_offset(src, mx[m])), x0);
        float *o = out + (int64_t)rows[i] * CW;
        row_t sum = row_add(row_add(x0, x1), row_add(x2, x3));
        row_store(o, row_add(sum, first ? b0 : row_load(o)));
    }
}

/* Slices (tests, simulation): out[r][t] = trilinear model value at M_r q_t + center, and
 * sums[r] = sum of out[r][t] over the pixels with good[t] != 0. */
void emc_slice(int nthreads, const double *model, int64_t s, int64_t nr, const double *rot,
               int64_t npix, const double *q, double center, const uint8_t *good, double *out,
               double *sums) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t r = 0; r < nr; ++r) {
        double acc = 0.0;
        for (int64_t t = 0; t < npix; ++t) {
            double v = trilinear(model, s, rot + 9 * r, q + 3 * t, center);
            out[r * npix + t] = v;
            if (good[t]) acc += v;
        }
        sums[r] = acc;
    }
}

/* Interpolation weights: the trilinear weights of every pixel of every orientation splatted
 * into this thread's copy of acc (nthreads x s^3, summed by the caller); independent of the
 * data, computed once per run.  Fixed orientations per thread: a reproducible sum. */
void emc_merge_weights(int nthreads, int64_t nr, const double *rot, int64_t npix, const double *q,
                       double center, int64_t s, double *acc) {
    double *qs = split_q(q, npix);
#pragma omp parallel num_threads(nthreads)
    {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        double *a = acc + (int64_t)th * s * s * s;
        double t0 = now();
#pragma omp for schedule(static, 32)
        for (int64_t r = 0; r < nr; ++r)
            splat_row(a, s, rot + 9 * r, npix, qs, qs + npix, qs + 2 * npix, center, NULL, 0, 1.0, NULL);
        add_phase(4, now() - t0);
    }
    free(qs);
}

/* Expand + Maximize, first half: for every tile of orientations, the log of the slices at
 * the likelihood pixels (one L2-sized tile per thread), then for every frame
 *   L[ch][d][c] = bias[r] + sum_j data_j log W[r, indices_j]
 * and sums[r] = sum over the likelihood pixels of W[r, t].
 * good_pos[t] = position of pixel t among the likelihood pixels, or -1. */
void emc_likelihood(int nthreads, const double *model, int64_t s, int64_t nchunk, const double *rot,
                    int64_t npix, const double *q, double center, const int32_t *good_pos,
                    int64_t ngood, int64_t nd, const photons_t *k, const float *bias, float *L,
                    double *sums) {
    double *qg = malloc((size_t)(3 * ngood + 1) * sizeof(double)); /* good pixels' qx, qy, qz */
    for (int64_t t = 0; t < npix; ++t)
        if (good_pos[t] >= 0)
            for (int i = 0; i < 3; ++i) qg[i * ngood + good_pos[t]] = q[3 * t + i];
#pragma omp parallel num_threads(nthreads)
    {
        /* the pixel blocks' rows, each block followed by a zero row (the lists' padding) */
        const int64_t nb = k->nb, tile_rows = k->nblocks * (nb + 1);
        float *tile = aligned_alloc(64, (size_t)tile_rows * CW * sizeof(float));
        memset(tile, 0, (size_t)tile_rows * CW * sizeof(float));
        float *vals = malloc((size_t)(ngood + 1) * sizeof(float));
        double t_expand = 0.0, t_product = 0.0;

#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunk; ++ch) {
            double t0 = now();
            for (int c = 0; c < CW; ++c) {
                const double *m = rot + 9 * (ch * CW + c);
                sums[ch * CW + c] = slice_row(model, s, m, ngood, qg, qg + ngood, qg + 2 * ngood, center, vals);
                /* vectorised logf (libmvec); log 1 = 0 where the slice is 0 (outside the
                 * volume): a 0 sent to the vector logf makes it take scalar code */
                for (int64_t k = 0; k < ngood; ++k) {
                    float v = vals[k];
                    vals[k] = logf(v > 0.0f ? v : 1.0f);
                }
                for (int64_t b = 0, t = 0; b < k->nblocks; ++b) /* row t + b: after b zero rows */
                    for (int64_t e = t + nb < ngood ? t + nb : ngood; t < e; ++t) tile[(t + b) * CW + c] = vals[t];
            }
            double t1 = now();
            t_expand += t1 - t0;
            /* the likelihood product, blocked by pixel (the first block writes L) */
            for (int64_t b = 0; b < k->nblocks; ++b)
                block_times_tile(k, b, tile + b * (nb + 1) * CW, b ? NULL : bias + ch * CW, L + ch * nd * CW);
            t_product += now() - t1;
        }
        add_phase(0, t_expand);
        add_phase(1, t_product);
        free(vals);
        free(tile);
    }
    free(qg);
}

/* Maximize, second half: L -> P with deterministic annealing, per frame and in place, in
 * three passes over the tiles.  Between them the caller combines the per-frame figures
 * over MPI ranks (each rank holds a share of the orientations of every frame):
 *   1. emc_prob_shift: v = L - phi_d sums_r (in double, rounded once); local max and its
 *      first orientation (padding of the last tile, r >= nvalid, never counts);
 *   2. emc_prob_exp:   x = beta_d (v - top_d), stored; partial sums of e = exp(x) (0 where
 *      x <= -cutoff) and of e v;
 *   3. emc_prob_norm:  P = e / tot_d; partial sums of P (log P - logw_r) over P >= floor
 *      (mutual information) and of P sums_r (expected photons); den[thread][r] += fscale_d P;
 *      stored P is 0 where P <= floor (the merge's numerator). */
void emc_prob_shift(int nthreads, float *L, int64_t nchunk, int64_t nd, int64_t nvalid,
                    const double *phi, const double *sums, double *top, int64_t *arg) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t d = 0; d < nd; ++d) {
        double ph = phi[d];
        float best = -FLT_MAX;
        int64_t at = 0;
        for (int64_t ch = 0; ch < nchunk; ++ch) {
            float *row = L + (ch * nd + d) * CW;
            const double *sm = sums + ch * CW;
            float m = -FLT_MAX;
            for (int c = 0; c < CW; ++c) {
                float v = (float)((double)row[c] - ph * sm[c]);
                row[c] = v;
                m = v > m ? v : m;
            }
            if (m > best) {
                for (int c = 0; c < CW; ++c)
                    if (row[c] == m && ch * CW + c < nvalid) { best = m; at = ch * CW + c; break; }
            }
        }
        top[d] = best;
        arg[d] = at;
    }
}

void emc_prob_exp(int nthreads, float *L, int64_t nchunk, int64_t nd, const double *top,
                  const double *beta, double cutoff, double *tot, double *lk) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t d = 0; d < nd; ++d) {
        float b = (float)beta[d], cut = (float)-cutoff, t = (float)top[d];
        double sum_e = 0.0, sum_ev = 0.0;
        for (int64_t ch = 0; ch < nchunk; ++ch) {
            float *row = L + (ch * nd + d) * CW;
            float t1 = 0.0f, l1 = 0.0f;
            for (int c = 0; c < CW; ++c) {
                float v = row[c];
                float x = (v - t) * b;
                /* expf of the clamped x: libmvec's vector expf takes a scalar path for every
                 * vector holding an underflowing x, which annealing makes most of them */
                float e = x > cut ? expf(x > cut ? x : cut) : 0.0f;
                t1 += e;
                l1 += e * v;
                row[c] = x;
            }
            sum_e += t1;
            sum_ev += l1;
        }
        tot[d] = sum_e;
        lk[d] = sum_ev;
    }
}

void emc_prob_norm(int nthreads, float *L, int64_t nchunk, int64_t nd, const double *tot,
                   const float *logw, const double *sums, const double *fscale, double cutoff,
                   double floor_p, double *info, double *expected, double *den) {
    int64_t npad = nchunk * CW;
#pragma omp parallel num_threads(nthreads)
    {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        double *dpart = den + (int64_t)th * npad;
        float *sums32 = malloc((size_t)(npad + 1) * sizeof(float));
        for (int64_t r = 0; r < npad; ++r) sums32[r] = (float)sums[r];
#pragma omp for schedule(static)
        for (int64_t d = 0; d < nd; ++d) {
            float inv = (float)(1.0 / tot[d]), ltot = (float)log(tot[d]), fl = (float)floor_p;
            float cut = (float)-cutoff, fs = (float)fscale[d];
            double mi = 0.0, ex = 0.0;
            for (int64_t ch = 0; ch < nchunk; ++ch) {
                float *row = L + (ch * nd + d) * CW;
                const float *lw = logw + ch * CW;
                const float *sm = sums32 + ch * CW;
                double *dp = dpart + ch * CW;
                float m1 = 0.0f, e1 = 0.0f;
                for (int c = 0; c < CW; ++c) {
                    float x = row[c];
                    float p = (x > cut ? expf(x > cut ? x : cut) : 0.0f) * inv; /* clamped: see emc_prob_exp */
                    m1 += p >= fl ? p * (x - ltot - lw[c]) : 0.0f;
                    e1 += p * sm[c];
                    dp[c] += fs * p;
                    row[c] = p > fl ? p : 0.0f;
                }
                mi += m1;
                ex += e1;
            }
            info[d] = mi;
            expected[d] = ex;
        }
        free(sums32);
    }
}

/* Compress: for every tile, the probability-weighted photons of each pixel
 *   num[t][c] = sum_d K[d][t] P[ch][d][c]   (K: frames x npix photon counts)
 * and their trilinear splats num / den_r / corr_t into this thread's copy of acc
 * (acc: nthreads x s^3, summed by the caller).  Tiles with den_r <= 0 add nothing.
 * The photon sums take one of two forms, chosen per tile from P alone (so every run, rank
 * count and thread count sums the same way):
 *   - most frames probable in the tile (early iterations): pixel by pixel, blocked by frame
 *     (bypixel: the transposed counts, nb frames a block, uint16 offsets): each block's
 *     nb rows of P (nb x 128 B) are copied next to a zero row into an L1 buffer and every
 *     pixel's photons in the block are summed in registers and added to its row of num;
 *   - few (SPARSE_MERGE): frame by frame over the frames with a probable orientation in
 *     the tile (byframe: one block, frame order), whose 32 probabilities, held in
 *     registers, are added to the rows of the pixels they lit. */
/* Below this fraction of frames live in a tile, the frame-by-frame form (the two forms
 * measured even at ~0.38 on the issue problem). */
#define SPARSE_MERGE 0.4
void emc_merge(int nthreads, const float *P, int64_t nchunk, int64_t nd, int64_t nr,
               const photons_t *byframe, const photons_t *bypixel, int64_t npix,
               const double *den, const double *corr, const double *rot, const double *q,
               double center, int64_t s, double *acc) {
    double *qs = split_q(q, npix);
    double *inv_corr = malloc((size_t)(npix + 1) * sizeof(double));
    for (int64_t t = 0; t < npix; ++t) inv_corr[t] = 1.0 / corr[t];
    const int64_t nb = bypixel->nb;
#pragma omp parallel num_threads(nthreads)
    {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        double *a = acc + (int64_t)th * s * s * s;
        float *num = aligned_alloc(64, (size_t)npix * CW * sizeof(float));
        float *pbuf = aligned_alloc(64, (size_t)(nb + 1) * CW * sizeof(float)); /* + a zero row */
        memset(pbuf + nb * CW, 0, CW * sizeof(float));
        int32_t *live = malloc((size_t)(nd + 1) * sizeof(int32_t));
        uint8_t *block_live = calloc((size_t)bypixel->nblocks + 1, 1);
        double t_sums = 0.0, t_splat = 0.0;
#pragma omp for schedule(static, 1) /* fixed tiles per thread: sums in a reproducible order */
        for (int64_t ch = 0; ch < nchunk; ++ch) {
            double t0 = now();
            int any = 0;
            for (int c = 0; c < CW; ++c) any |= (ch * CW + c < nr) && den[ch * CW + c] > 0.0;
            if (!any) continue;
            const float *tile = P + ch * nd * CW;
            /* the frames with a probable orientation in this tile (a frame with none adds
             * nothing: most frames, once the annealing has sharpened the probabilities) */
            int64_t nlive = 0;
            memset(block_live, 0, (size_t)bypixel->nblocks);
            for (int64_t d = 0; d < nd; ++d) {
                const float *pr = tile + d * CW;
                __m256 top = _mm256_max_ps(_mm256_max_ps(_mm256_loadu_ps(pr), _mm256_loadu_ps(pr + 8)),
                                           _mm256_max_ps(_mm256_loadu_ps(pr + 16), _mm256_loadu_ps(pr + 24)));
                int on = _mm256_movemask_ps(_mm256_cmp_ps(top, _mm256_setzero_ps(), _CMP_GT_OQ)) != 0;
                live[nlive] = (int32_t)d;
                nlive += on;
                block_live[d / nb] |= on;
            }
            memset(num, 0, (size_t)npix * CW * sizeof(float));
            if (nlive >= SPARSE_MERGE * nd) {
                for (int64_t b = 0; b < bypixel->nblocks; ++b) {
                    if (!block_live[b]) continue;
                    int64_t lo = b * nb, n = nd - lo < nb ? nd - lo : nb;
                    memcpy(pbuf, tile + lo * CW, (size_t)n * CW * sizeof(float));
                    block_times_tile(bypixel, b, pbuf, NULL, num);
                }
            } else {
                const int64_t *op = byframe->ones_ptr, *mp = byframe->multi_ptr;
                const int32_t *ones = byframe->ones, *multi = byframe->multi; /* int32 columns */
                for (int64_t i = 0; i < nlive; ++i) {
                    int64_t d = live[i];
                    const row_t p = row_load(tile + d * CW);
                    for (int64_t j = op[d]; j < op[d + 1]; ++j) {
                        float *o = num + (int64_t)ones[j] * CW;
                        row_store(o, row_add(p, row_load(o)));
                    }
                    for (int64_t j = mp[d]; j < mp[d + 1]; ++j) {
                        float *o = num + (int64_t)multi[j] * CW;
                        row_store(o, row_fma(byframe->counts[j], p, row_load(o)));
                    }
                }
            }
            double t1 = now();
            t_sums += t1 - t0;
            for (int c = 0; c < CW; ++c) {
                int64_t r = ch * CW + c;
                if (r >= nr || !(den[r] > 0.0)) continue;
                splat_row(a, s, rot + 9 * r, npix, qs, qs + npix, qs + 2 * npix, center, num + c, CW,
                          1.0 / den[r], inv_corr);
            }
            t_splat += now() - t1;
        }
        add_phase(2, t_sums);
        add_phase(3, t_splat);
        free(block_live);
        free(live);
        free(pbuf);
        free(num);
    }
    free(inv_corr);
    free(qs);
}
