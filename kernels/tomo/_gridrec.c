/* gridrec's CPU loops in C: spreading the polar spectrum, folding the padded grid, finishing
 * the image.  The maths and array conventions are documented in gridrec.py and
 * _gridrec_cpu.py (the numba versions of the same three loops, used where no C compiler is
 * found); built and loaded by beamhub.kernels.native.
 *
 * Why C: in the spreading loop each polar sample adds a 6 x 8 block of complex cells (and the
 * mirror block at -k).  Written as GCC vector rows (one AVX-512 register of 8 complex64, or two
 * AVX2 ones) a row update is one load, one fused multiply-add and one store; numba's LLVM
 * emits a runtime-length loop with alias checks per row instead, about three times slower.
 * No function here takes a lock or touches Python: ctypes releases the GIL around each call,
 * and gridrec runs one pair of slices per thread. */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Cells written per grid row: the kernel's 6 taps padded to 8 (weights past the kernel are 0). */
#define TAPS 8
/* Angles spread together: their lines overlap on the grid near the origin, so a block walked
 * outwards keeps its cells in cache. */
#define ANGLE_BLOCK 32

typedef float row_t __attribute__((vector_size(2 * TAPS * sizeof(float))));

static inline row_t load_row(const float *p) {
    row_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store_row(float *p, row_t v) { memcpy(p, &v, sizeof v); }

int gridrec_taps(void) { return TAPS; }

/* Add a pair's polar samples into the padded complex grid (flat, rows x stride complex64).
 *   spec_a, spec_b : (n_angles, half) complex64, rfft of the two rows' projections
 *   phase          : (n_angles, half) complex64, filter x per-angle phase
 *   row_a, row_b   : (half,) complex64, each row's axis-shift phase
 *   step_x, step_y : (n_angles,) float64, grid cells per frequency index along x and y
 *   table          : float32 kernel profile, per_cell samples a cell over width cells (+2 guard)
 *   origin         : padded index of grid cell 0 on each axis
 *   grid           : (rows * stride) complex64, zeroed by the caller; stride >= rows + TAPS
 * Sample k of angle a carries A + iB at +g and conj(A) + i conj(B) at -g (both rows are
 * real); the Nyquist sample is dropped. */
void gridrec_spread(const float *spec_a, const float *spec_b, const float *phase, const float *row_a,
                    const float *row_b, const double *step_x, const double *step_y, int64_t n_angles,
                    int64_t half, const float *table, int64_t per_cell, int64_t width, int64_t origin,
                    float *grid, int64_t stride) {
    const double hw = 0.5 * (double)width;
    for (int64_t a0 = 0; a0 < n_angles; a0 += ANGLE_BLOCK) {
        int64_t a1 = a0 + ANGLE_BLOCK < n_angles ? a0 + ANGLE_BLOCK : n_angles;
        for (int64_t k = 0; k < half - 1; ++k) {
            const float rar = row_a[2 * k], rai = row_a[2 * k + 1];
            const float rbr = row_b[2 * k], rbi = row_b[2 * k + 1];
            for (int64_t a = a0; a < a1; ++a) {
                const int64_t s = 2 * (a * half + k);
                const float phr = phase[s], phi = phase[s + 1];
                /* ph * row, then spec * (ph * row), for each row */
                const float qar = phr * rar - phi * rai, qai = phr * rai + phi * rar;
                const float qbr = phr * rbr - phi * rbi, qbi = phr * rbi + phi * rbr;
                const float sar = spec_a[s], sai = spec_a[s + 1], sbr = spec_b[s], sbi = spec_b[s + 1];
                const float zar = sar * qar - sai * qai, zai = sar * qai + sai * qar;
                const float zbr = sbr * qbr - sbi * qbi, zbi = sbr * qbi + sbi * qbr;
                const float pr = zar - zbi, pi = zai + zbr; /* A + iB at +k */
                const float mr = zar + zbi, mi = zbr - zai; /* conj(A) + i conj(B) at -k */

                const double gx = step_x[a] * (double)k, gy = step_y[a] * (double)k;
                const double fx = floor(gx - hw) + 1.0, fy = floor(gy - hw) + 1.0;
                const double px = (fx - gx + hw) * (double)per_cell, py = (fy - gy + hw) * (double)per_cell;
                const int64_t ix = (int64_t)px, iy = (int64_t)py;
                const float tx = (float)(px - (double)ix), ty = (float)(py - (double)iy);

                float wx[TAPS] = {0}, wxr[TAPS] = {0}, wy[TAPS] = {0};
                for (int64_t j = 0; j < width; ++j) {
                    const float *t = table + ix + j * per_cell;
                    const float w = t[0] + tx * (t[1] - t[0]);
                    wx[j] = w;
                    wxr[width - 1 - j] = w;
                    const float *u = table + iy + j * per_cell;
                    wy[j] = u[0] + ty * (u[1] - u[0]);
                }
                row_t vp, vm;
                for (int j = 0; j < TAPS; ++j) {
                    vp[2 * j] = pr * wx[j];
                    vp[2 * j + 1] = pi * wx[j];
                    vm[2 * j] = mr * wxr[j];
                    vm[2 * j + 1] = mi * wxr[j];
                }
                const int64_t x0 = (int64_t)fx, y0 = (int64_t)fy;
                float *b = grid + 2 * ((y0 + origin) * stride + (x0 + origin));
                for (int64_t jy = 0; jy < width; ++jy) {
                    float *o = b + 2 * jy * stride;
                    store_row(o, load_row(o) + vp * wy[jy]);
                }
                if (k > 0) {
                    /* the mirror point -g: cells -(x0 + j) carry the same weights reversed */
                    float *c = grid + 2 * ((origin - y0 - (width - 1)) * stride + (origin - x0 - (width - 1)));
                    for (int64_t jy = 0; jy < width; ++jy) {
                        float *o = c + 2 * jy * stride;
                        store_row(o, load_row(o) + vm * wy[width - 1 - jy]);
                    }
                }
            }
        }
    }
}

/* Wrap the padded grid (rows x stride complex64) onto the periodic (m, m) grid `out` (row
 * pitch `pitch` complex, centred order: out[i][j] holds cell (i - m/2, j - m/2)); `out` need
 * not be zeroed. */
void gridrec_fold(const float *grid, int64_t rows, int64_t stride, int64_t origin, int64_t m, float *out,
                  int64_t pitch) {
    const int64_t h = m / 2, lo = origin - h;
    for (int64_t i = 0; i < m; ++i)
        memcpy(out + 2 * i * pitch, grid + 2 * ((lo + i) * stride + lo), (size_t)m * 2 * sizeof(float));
    for (int64_t py = 0; py < rows; ++py) {
        const int inside_row = lo <= py && py < lo + m;
        const int64_t i = ((py - lo) % m + m) % m;
        const float *r = grid + 2 * py * stride;
        float *o = out + 2 * i * pitch;
        for (int64_t px = 0; px < stride; ++px) {
            if (inside_row && lo <= px && px < lo + m) {
                px = lo + m - 1;
                continue;
            }
            const float vr = r[2 * px], vi = r[2 * px + 1];
            if (vr != 0.0f || vi != 0.0f) {
                const int64_t j = ((px - lo) % m + m) % m;
                o[2 * j] += vr;
                o[2 * j + 1] += vi;
            }
        }
    }
}

/* Deapodised real and imaginary parts of the kept image block as two (n, n) float32 slices.
 * upper: (n - n/2, m) complex64 rows 0 .. (y >= 0), lower: (n/2, m) rows m - n/2 .. (y < 0),
 * rows `upper_pitch` / `lower_pitch` complex apart; scale: (n,) float32 by signed index + n/2. */
void gridrec_finish(const float *upper, int64_t upper_pitch, const float *lower, int64_t lower_pitch,
                    int64_t n, int64_t m, const float *scale, float *out_a, float *out_b) {
    const int64_t h = n / 2;
    for (int64_t y = 0; y < n; ++y) {
        const float *src = y < h ? lower + 2 * y * lower_pitch : upper + 2 * (y - h) * upper_pitch;
        const float sy = scale[y];
        for (int64_t x = 0; x < n; ++x) {
            const int64_t col = ((x - h) % m + m) % m;
            const float s = sy * scale[x];
            out_a[y * n + x] = src[2 * col] * s;
            out_b[y * n + x] = src[2 * col + 1] * s;
        }
    }
}
