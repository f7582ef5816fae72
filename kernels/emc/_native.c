/* Native CPU kernels of the EMC iteration: C, OpenMP threads, AVX2 + FMA vectors.
 *
 * Built on first use by _native.py (gcc -O3 -march=native -ffast-math -fopenmp) and
 * loaded with ctypes; ops.ops_for picks them on the CPU (the numba loops in _numba.py
 * where no compiler is).  The one trilinear locate step of this language is locate().
 *
 * Orientations are processed in tiles of CW = 32.  The log-likelihood / probability
 * matrix is stored tile-major, L[ch][d][c] for orientation r = ch*CW + c, so that every
 * tile's (frames x 32) block is contiguous: the photon products then read and write
 * whole 128-byte rows that stay in the core's L2 cache.  Both photon products are
 * written as gathers (sparse row times dense rows, summed in registers), which keeps
 * the accumulators in vector registers instead of read-modify-writing memory.
 */
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define CW 32
#define NV (CW / 8)

int emc_tile_width(void) { return CW; }

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
#pragma omp parallel num_threads(nthreads)
    {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        double *a = acc + (int64_t)th * s * s * s;
        const int64_t sy = s, sx = s * s;
#pragma omp for schedule(static, 32)
        for (int64_t r = 0; r < nr; ++r) {
            for (int64_t t = 0; t < npix; ++t) {
                int64_t base;
                double fx, fy, fz;
                if (!locate(s, rot + 9 * r, q + 3 * t, center, &base, &fx, &fy, &fz)) continue;
                double gx = 1.0 - fx, gy = 1.0 - fy, gz = 1.0 - fz;
                double *p = a + base;
                p[0] += gx * gy * gz;
                p[1] += gx * gy * fz;
                p[sy] += gx * fy * gz;
                p[sy + 1] += gx * fy * fz;
                p[sx] += fx * gy * gz;
                p[sx + 1] += fx * gy * fz;
                p[sx + sy] += fx * fy * gz;
                p[sx + sy + 1] += fx * fy * fz;
            }
        }
    }
}

/* Expand + Maximize, first half: for every tile of orientations, the log of the slices at
 * the likelihood pixels (one L2-sized tile per thread), then for every frame
 *   L[ch][d][c] = bias[r] + sum_j data_j log W[r, indices_j]
 * and sums[r] = sum over the likelihood pixels of W[r, t].
 * good_pos[t] = position of pixel t among the likelihood pixels, or -1. */
void emc_likelihood(int nthreads, const double *model, int64_t s, int64_t nchunk, const double *rot,
                    int64_t npix, const double *q, double center, const int32_t *good_pos,
                    int64_t ngood, int64_t nd, const int64_t *indptr, const int32_t *indices,
                    const float *data, const float *bias, float *L, double *sums) {
#pragma omp parallel num_threads(nthreads)
    {
        float *tile = aligned_alloc(64, ((size_t)ngood * CW * sizeof(float) + 63) / 64 * 64);
        float *vals = malloc((size_t)(ngood + 1) * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunk; ++ch) {
            for (int c = 0; c < CW; ++c) {
                const double *m = rot + 9 * (ch * CW + c);
                double acc = 0.0;
                for (int64_t t = 0; t < npix; ++t) {
                    int32_t k = good_pos[t];
                    if (k < 0) continue;
                    double v = trilinear(model, s, m, q + 3 * t, center);
                    acc += v;
                    vals[k] = (float)v;
                }
                sums[ch * CW + c] = acc;
                for (int64_t k = 0; k < ngood; ++k) {  /* vectorised logf (libmvec) */
                    float v = vals[k];
                    vals[k] = v > 0.0f ? logf(v) : 0.0f;
                }
                for (int64_t k = 0; k < ngood; ++k) tile[k * CW + c] = vals[k];
            }
            float *out = L + ch * nd * CW;
            /* two passes of 16 columns, so the tile's half-rows (ngood x 64 B) stay in L2 */
            for (int half = 0; half < CW; half += 16) {
                const float *tl = tile + half;
                const float *b = bias + ch * CW + half;
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                for (int64_t d = 0; d < nd; ++d) {
                    __m256 x0 = b0, x1 = b1, y0 = _mm256_setzero_ps(), y1 = y0;
                    int64_t j = indptr[d], end = indptr[d + 1];
                    for (; j + 1 < end; j += 2) {
                        const float *r0 = tl + (int64_t)indices[j] * CW;
                        const float *r1 = tl + (int64_t)indices[j + 1] * CW;
                        __m256 w0 = _mm256_set1_ps(data[j]), w1 = _mm256_set1_ps(data[j + 1]);
                        x0 = _mm256_fmadd_ps(w0, _mm256_load_ps(r0), x0);
                        x1 = _mm256_fmadd_ps(w0, _mm256_load_ps(r0 + 8), x1);
                        y0 = _mm256_fmadd_ps(w1, _mm256_load_ps(r1), y0);
                        y1 = _mm256_fmadd_ps(w1, _mm256_load_ps(r1 + 8), y1);
                    }
                    if (j < end) {
                        const float *r0 = tl + (int64_t)indices[j] * CW;
                        __m256 w0 = _mm256_set1_ps(data[j]);
                        x0 = _mm256_fmadd_ps(w0, _mm256_load_ps(r0), x0);
                        x1 = _mm256_fmadd_ps(w0, _mm256_load_ps(r0 + 8), x1);
                    }
                    _mm256_storeu_ps(out + d * CW + half, _mm256_add_ps(x0, y0));
                    _mm256_storeu_ps(out + d * CW + half + 8, _mm256_add_ps(x1, y1));
                }
            }
        }
        free(vals);
        free(tile);
    }
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
                float e = x > cut ? expf(x) : 0.0f;
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
                    float p = (x > cut ? expf(x) : 0.0f) * inv;
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
 *   num[t][c] = sum_d K[d][t] P[ch][d][c]   (K: frames as CSR rows, npix columns)
 * and their trilinear splats num / den_r / corr_t into this thread's copy of acc
 * (acc: nthreads x s^3, summed by the caller).  Tiles with den_r <= 0 add nothing. */
void emc_merge(int nthreads, const float *P, int64_t nchunk, int64_t nd, int64_t nr,
               const int64_t *indptr, const int32_t *indices, const float *data, int64_t npix,
               const double *den, const double *corr, const double *rot, const double *q,
               double center, int64_t s, double *acc) {
#pragma omp parallel num_threads(nthreads)
    {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        double *a = acc + (int64_t)th * s * s * s;
        float *num = aligned_alloc(64, ((size_t)npix * CW * sizeof(float) + 63) / 64 * 64);
#pragma omp for schedule(static, 1) /* fixed tiles per thread: sums in a reproducible order */
        for (int64_t ch = 0; ch < nchunk; ++ch) {
            int any = 0;
            for (int c = 0; c < CW; ++c) any |= (ch * CW + c < nr) && den[ch * CW + c] > 0.0;
            if (!any) continue;
            const float *tile = P + ch * nd * CW;
            /* frame by frame (the tile streams in order): the frame's 32 probabilities stay
             * in registers and are added to the rows of the pixels it lit (measured faster
             * than gathering per pixel: photons crowd the low-q pixels, whose rows stay hot) */
            memset(num, 0, (size_t)npix * CW * sizeof(float));
            for (int64_t d = 0; d < nd; ++d) {
                const float *pr = tile + d * CW;
                __m256 p0 = _mm256_loadu_ps(pr), p1 = _mm256_loadu_ps(pr + 8),
                       p2 = _mm256_loadu_ps(pr + 16), p3 = _mm256_loadu_ps(pr + 24);
                /* a frame with no probable orientation in this tile adds nothing: skip its
                 * photons (most frames, once the annealing has sharpened the probabilities) */
                __m256 top = _mm256_max_ps(_mm256_max_ps(p0, p1), _mm256_max_ps(p2, p3));
                if (!_mm256_movemask_ps(_mm256_cmp_ps(top, _mm256_setzero_ps(), _CMP_GT_OQ))) continue;
                for (int64_t j = indptr[d]; j < indptr[d + 1]; ++j) {
                    float *o = num + (int64_t)indices[j] * CW;
                    __m256 w = _mm256_set1_ps(data[j]);
                    _mm256_store_ps(o, _mm256_fmadd_ps(w, p0, _mm256_load_ps(o)));
                    _mm256_store_ps(o + 8, _mm256_fmadd_ps(w, p1, _mm256_load_ps(o + 8)));
                    _mm256_store_ps(o + 16, _mm256_fmadd_ps(w, p2, _mm256_load_ps(o + 16)));
                    _mm256_store_ps(o + 24, _mm256_fmadd_ps(w, p3, _mm256_load_ps(o + 24)));
                }
            }
            for (int c = 0; c < CW; ++c) {
                int64_t r = ch * CW + c;
                if (r >= nr || !(den[r] > 0.0)) continue;
                const double *m = rot + 9 * r;
                double scale = 1.0 / den[r];
                for (int64_t t = 0; t < npix; ++t) {
                    float nv = num[t * CW + c];
                    if (nv == 0.0f) continue;
                    int64_t base;
                    double fx, fy, fz;
                    if (!locate(s, m, q + 3 * t, center, &base, &fx, &fy, &fz)) continue;
                    double v = nv * scale / corr[t];
                    double gx = 1.0 - fx, gy = 1.0 - fy, gz = 1.0 - fz;
                    double *p = a + base;
                    const int64_t sy = s, sx = s * s;
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
        }
        free(num);
    }
}
