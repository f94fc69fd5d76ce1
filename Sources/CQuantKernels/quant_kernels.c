#include "quant_kernels.h"
#include <immintrin.h>

int qk_has_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
}

/* AVX-512F: a 16-entry table lookup is one permute (the NF4 code is 16 floats). */
static int qk_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f");
    return cached;
}

/* ---------- dequantization into float tiles (for sgemm) ---------- */

/* 32 weights from 16 packed bytes at once: byte k's high nibble is weight 2k, its low nibble
   weight 2k + 1. Widened to 32-bit lanes, (byte >> 4) and the byte itself index the table (the
   permute reads the low 4 bits), giving the even and odd weights; two two-source permutes put them
   back in storage order (lane i of the first result: i even -> even[i / 2], i odd -> odd[i / 2]).
   The products code * scale are the scalar loop's, so the values are identical. */
__attribute__((target("avx512f")))
static void nf4_dequantize_avx512(const uint8_t *packed, const float *scales, const float *code16, long block,
                                  long first, long count, float *o) {
    __m512 lut = _mm512_loadu_ps(code16);
    __m512i lo_order = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    __m512i hi_order = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (long c = 0; c < count; c += 32) {
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(packed + (first + c) / 2)));
        __m512 s = _mm512_set1_ps(scales[(first + c) / block]);
        __m512 even = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), s);
        __m512 odd = _mm512_mul_ps(_mm512_permutexvar_ps(v, lut), s);
        _mm512_storeu_ps(o + c, _mm512_permutex2var_ps(even, lo_order, odd));
        _mm512_storeu_ps(o + c + 16, _mm512_permutex2var_ps(even, hi_order, odd));
    }
}

void qk_nf4_dequantize_block(const uint8_t *packed, const float *scales, const float *code16, long block, long cols,
                             long row0, long nrows, long col0, long ncols, float *out) {
    /* Whole 32-weight runs inside one block (block, cols, col0 and ncols multiples of 32). */
    int wide = qk_has_avx512() && block % 32 == 0 && cols % 32 == 0 && col0 % 32 == 0 && ncols % 32 == 0;
    for (long r = 0; r < nrows; r++) {
        long base = (row0 + r) * cols + col0;
        float *o = out + r * ncols;
        if (wide) {
            nf4_dequantize_avx512(packed, scales, code16, block, base, ncols, o);
            continue;
        }
        for (long c = 0; c < ncols; c++) {
            long i = base + c;
            uint8_t byte = packed[i >> 1];
            o[c] = code16[(i & 1) ? (byte & 0x0F) : (byte >> 4)] * scales[i / block];
        }
    }
}

void qk_int8_dequantize_block(const int8_t *codes, const float *row_scales, long cols,
                              long row0, long nrows, long col0, long ncols, float *out) {
    for (long r = 0; r < nrows; r++) {
        const int8_t *w = codes + (row0 + r) * cols + col0;
        float s = row_scales[row0 + r];
        float *o = out + r * ncols;
        for (long c = 0; c < ncols; c++) o[c] = (float)w[c] * s;
    }
}

/* ---------- matrix-vector products reading the codes directly ---------- */

void qk_deinterleave(const float *x, long cols, float *xe, float *xo) {
    for (long j = 0; j < cols / 2; j++) { xe[j] = x[2 * j]; xo[j] = x[2 * j + 1]; }
}

static float nf4_row_scalar(const uint8_t *bytes, const float *scales, const float *code16, long block,
                            long cols, const float *xe, const float *xo) {
    float total = 0;
    for (long b = 0; b < cols / block; b++) {
        float acc = 0;
        for (long j = b * block / 2; j < (b + 1) * block / 2; j++)
            acc += code16[bytes[j] >> 4] * xe[j] + code16[bytes[j] & 0x0F] * xo[j];
        total += acc * scales[b];
    }
    return total;
}

__attribute__((target("avx2,fma")))
static inline __m256 lut16(__m256i idx, __m256 lo, __m256 hi) {
    /* code16[idx] for 8 lanes: permute within each 8-entry half, pick by bit 3 of idx. */
    __m256 a = _mm256_permutevar8x32_ps(lo, idx);
    __m256 b = _mm256_permutevar8x32_ps(hi, idx);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

__attribute__((target("avx2,fma")))
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static float nf4_row_avx2(const uint8_t *bytes, const float *scales, const float *code16, long block,
                          long cols, const float *xe, const float *xo) {
    __m256 lo = _mm256_loadu_ps(code16), hi = _mm256_loadu_ps(code16 + 8);
    __m256i mask = _mm256_set1_epi32(0x0F);
    __m256 total = _mm256_setzero_ps();
    for (long b = 0; b < cols / block; b++) {
        __m256 acc = _mm256_setzero_ps();
        for (long j = b * block / 2; j < (b + 1) * block / 2; j += 8) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(bytes + j)));
            __m256 we = lut16(_mm256_srli_epi32(v, 4), lo, hi);
            __m256 wo = lut16(_mm256_and_si256(v, mask), lo, hi);
            acc = _mm256_fmadd_ps(we, _mm256_loadu_ps(xe + j), acc);
            acc = _mm256_fmadd_ps(wo, _mm256_loadu_ps(xo + j), acc);
        }
        total = _mm256_fmadd_ps(acc, _mm256_set1_ps(scales[b]), total);
    }
    return hsum256(total);
}

__attribute__((target("avx512f")))
static float nf4_row_avx512(const uint8_t *bytes, const float *scales, const float *code16, long block,
                            long cols, const float *xe, const float *xo) {
    __m512 lut = _mm512_loadu_ps(code16);
    __m512i mask = _mm512_set1_epi32(0x0F);
    __m512 total = _mm512_setzero_ps();
    for (long b = 0; b < cols / block; b++) {
        __m512 acc = _mm512_setzero_ps();
        for (long j = b * block / 2; j < (b + 1) * block / 2; j += 16) {
            __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(bytes + j)));
            __m512 we = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
            __m512 wo = _mm512_permutexvar_ps(_mm512_and_si512(v, mask), lut);
            acc = _mm512_fmadd_ps(we, _mm512_loadu_ps(xe + j), acc);
            acc = _mm512_fmadd_ps(wo, _mm512_loadu_ps(xo + j), acc);
        }
        total = _mm512_fmadd_ps(acc, _mm512_set1_ps(scales[b]), total);
    }
    return _mm512_reduce_add_ps(total);
}

/* ---------- NF4, AVX-512: indices straight from the packed bytes ----------

   A 64-byte load of one row's codes holds 128 weights; its 32-bit lane i (0..15) holds bytes
   4i..4i+3 of the chunk, i.e. weights 8i..8i+7 (byte k: high nibble weight 2k, low nibble 2k+1).
   _mm512_permutexvar_ps reads only the low 4 bits of each lane's index, so lane i shifted right by
   4p (p = 0..7) indexes the code table with nibble p of the lane without any masking or widening:
   p = 2k is byte k's low nibble (weight 8i + 2k + 1), p = 2k + 1 its high nibble (weight 8i + 2k).
   Eight shifts, eight permutes and eight fused multiply-adds per 128 weights, if x is laid out in
   the same order: plane p of chunk c holds, in lane i, x[128c + 8i + 2(p / 2) + (p even ? 1 : 0)]
   (qk_nf4_prepare). With NF4 blocks of 64 weights (any multiple of 64), lanes 0-7 of a chunk lie in
   one block and lanes 8-15 in the next, so the chunk's sum is scaled by a vector of two scales.
   A last chunk of 64 weights (cols % 128 == 64) is loaded into lanes 0-7; its x lanes 8-15 are 0.

   Each row's value is sum_blocks scale_b * sum_{j in b} code[n_j] x_j, as the scalar kernel, in
   another order of float additions. */

long qk_nf4_prepared_count(long cols) { return (cols + 127) / 128 * 128; }

void qk_nf4_prepare(const float *x, long cols, float *planes) {
    long n = qk_nf4_prepared_count(cols);
    for (long c = 0; c < n; c += 128)
        for (int p = 0; p < 8; p++)
            for (int i = 0; i < 16; i++) {
                long j = c + 8 * i + 2 * (p / 2) + (p % 2 == 0 ? 1 : 0);
                planes[c + 16 * p + i] = j < cols ? x[j] : 0;
            }
}

/* sum over the chunk's 128 weights of code[n_j] x_j, lane by lane (lanes 0-7 and 8-15 are the two
   64-weight halves). */
__attribute__((target("avx512f")))
static inline __m512 nf4_chunk(__m512i v, const float *xp, __m512 lut) {
    __m512 acc = _mm512_mul_ps(_mm512_permutexvar_ps(v, lut), _mm512_loadu_ps(xp));
    __m512 acc2 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), _mm512_loadu_ps(xp + 16));
    for (int p = 2; p < 8; p += 2) {
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * p), lut), _mm512_loadu_ps(xp + 16 * p), acc);
        acc2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * p + 4), lut), _mm512_loadu_ps(xp + 16 * p + 16), acc2);
    }
    return _mm512_add_ps(acc, acc2);
}

/* The scales of a chunk's two halves: lanes 0-7 the scale of weight 128c, lanes 8-15 that of 128c + 64. */
__attribute__((target("avx512f")))
static inline __m512 nf4_chunk_scales(const float *scales, long block, long first) {
    return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(scales[first / block]), _mm512_set1_ps(scales[(first + 64) / block]));
}

/* Rows r .. r + nrows - 1 (nrows 1..4) of the product; rows are independent accumulator chains
   sharing every load of x. */
__attribute__((target("avx512f")))
static inline void nf4_rows_planes(const uint8_t *bytes, long row_bytes, const float *scales, long row_scales,
                                   const float *code16, long block, long cols, const float *planes, int nrows, float *out) {
    __m512 lut = _mm512_loadu_ps(code16);
    __m512 total[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    long c = 0;
    for (; c + 128 <= cols; c += 128)
        for (int k = 0; k < nrows; k++) {
            __m512i v = _mm512_loadu_si512((const void *)(bytes + k * row_bytes + c / 2));
            _mm_prefetch((const char *)(bytes + (k + 4) * row_bytes + c / 2), _MM_HINT_T0);
            __m512 s = nf4_chunk_scales(scales + k * row_scales, block, c);
            total[k] = _mm512_fmadd_ps(nf4_chunk(v, planes + c, lut), s, total[k]);
        }
    if (c < cols)   /* 64 weights left: lanes 0-7 */
        for (int k = 0; k < nrows; k++) {
            __m512i v = _mm512_maskz_loadu_epi32(0x00FF, (const void *)(bytes + k * row_bytes + c / 2));
            __m512 s = _mm512_set1_ps(scales[k * row_scales + c / block]);
            total[k] = _mm512_fmadd_ps(nf4_chunk(v, planes + c, lut), s, total[k]);
        }
    for (int k = 0; k < nrows; k++) out[k] = _mm512_reduce_add_ps(total[k]);
}

/* y[r] (+)= row r . x for r in [row0, row0 + nrows), four rows at a time; needs cols % 64 == 0 and
   block % 64 == 0. */
__attribute__((target("avx512f")))
static void nf4_matvec_planes(const uint8_t *packed, const float *scales, const float *code16, long block, long cols,
                              long row0, long nrows, const float *planes, float *y, int accumulate) {
    long blocks_per_row = cols / block;
    for (long r = row0; r < row0 + nrows; r += 4) {
        int n = row0 + nrows - r < 4 ? (int)(row0 + nrows - r) : 4;
        float v[4];
        nf4_rows_planes(packed + r * cols / 2, cols / 2, scales + r * blocks_per_row, blocks_per_row, code16, block,
                        cols, planes, n, v);
        for (int k = 0; k < n; k++) y[r + k] = accumulate ? y[r + k] + v[k] : v[k];
    }
}

/* ---------- NF4, AVX-512: a few input rows at once (a short prompt) ----------

   Y[m][r] = sum_c W[r][c] X[m][c] for a tile of up to 4 rows r of W and 4 rows m of X: the codes
   of each plane p of a chunk (see nf4_chunk) are unpacked once per row of W and multiplied by
   their block scales, which gives exactly the dequantized weights code[n] * scale; each unpacked
   vector serves the 4 rows of X and each load of X the 4 rows of W (16 accumulators), so the tile
   runs on the fused multiply-adds rather than on loads of X from the L2 cache. Against
   dequantizing W into float tiles for sgemm, the float weights never go to memory. */
__attribute__((target("avx512f"), always_inline))
static inline void nf4_tile(const uint8_t *bytes, long row_bytes, const float *scales, long row_scales,
                            const float *code16, long block, long cols, const float *planes, long plane_stride,
                            const int nw, const int nx, float out[4][4]) {
    __m512 lut = _mm512_loadu_ps(code16);
    __m512 acc[4][4];
    for (int k = 0; k < nw; k++)
        for (int m = 0; m < nx; m++) acc[k][m] = _mm512_setzero_ps();
    for (long c = 0; c < cols; c += 128) {
        int tail = c + 128 > cols;   /* the last 64 weights: lanes 0-7 */
        __m512i v[4];
        __m512 s[4];
        for (int k = 0; k < nw; k++) {
            const void *at = bytes + k * row_bytes + c / 2;
            v[k] = tail ? _mm512_maskz_loadu_epi32(0x00FF, at) : _mm512_loadu_si512(at);
            s[k] = tail ? _mm512_set1_ps(scales[k * row_scales + c / block]) : nf4_chunk_scales(scales + k * row_scales, block, c);
        }
        for (int p = 0; p < 8; p++) {
            __m512 w[4];
            for (int k = 0; k < nw; k++) w[k] = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v[k], 4 * p), lut), s[k]);
            for (int m = 0; m < nx; m++) {
                __m512 x = _mm512_loadu_ps(planes + m * plane_stride + c + 16 * p);
                for (int k = 0; k < nw; k++) acc[k][m] = _mm512_fmadd_ps(w[k], x, acc[k][m]);
            }
        }
    }
    for (int k = 0; k < nw; k++)
        for (int m = 0; m < nx; m++) out[k][m] = _mm512_reduce_add_ps(acc[k][m]);
}

__attribute__((target("avx512f")))
void qk_nf4_matmul(const uint8_t *packed, const float *scales, const float *code16, long block, long cols,
                   long row0, long nrows, const float *planes, long nx, float *y, long ldy, int accumulate) {
    long stride = qk_nf4_prepared_count(cols), blocks_per_row = cols / block;
    for (long r = row0; r < row0 + nrows; r += 4) {
        int nw = row0 + nrows - r >= 4 ? 4 : 1;
        for (long m = 0; m < nx; m += 4) {
            int n = nx - m >= 4 ? 4 : 1;
            float v[4][4];
            const uint8_t *bytes = packed + r * cols / 2;
            const float *sc = scales + r * blocks_per_row, *p = planes + m * stride;
            if (nw == 4 && n == 4) nf4_tile(bytes, cols / 2, sc, blocks_per_row, code16, block, cols, p, stride, 4, 4, v);
            else if (nw == 4) nf4_tile(bytes, cols / 2, sc, blocks_per_row, code16, block, cols, p, stride, 4, 1, v);
            else if (n == 4) nf4_tile(bytes, cols / 2, sc, blocks_per_row, code16, block, cols, p, stride, 1, 4, v);
            else nf4_tile(bytes, cols / 2, sc, blocks_per_row, code16, block, cols, p, stride, 1, 1, v);
            for (int k = 0; k < nw; k++)
                for (int j = 0; j < n; j++) {
                    float *o = y + (m + j) * ldy + r + k;
                    *o = accumulate ? *o + v[k][j] : v[k][j];
                }
            m += n - 4;   /* a single row advances by 1 */
        }
        r += nw - 4;
    }
}

int qk_nf4_uses_planes(long block, long cols) {
    return qk_has_avx512() && block % 64 == 0 && cols % 64 == 0;
}

void qk_nf4_matvec(const uint8_t *packed, const float *scales, const float *code16, long block,
                   long cols, long row0, long nrows, const float *xe, const float *xo, const float *planes,
                   float *y, int accumulate) {
    if (qk_nf4_uses_planes(block, cols)) {
        nf4_matvec_planes(packed, scales, code16, block, cols, row0, nrows, planes, y, accumulate);
        return;
    }
    int wide = qk_has_avx512() && block % 32 == 0, fast = qk_has_avx2();
    long blocks_per_row = cols / block;
    for (long r = row0; r < row0 + nrows; r++) {
        const uint8_t *bytes = packed + r * cols / 2;
        const float *s = scales + r * blocks_per_row;
        float v = wide ? nf4_row_avx512(bytes, s, code16, block, cols, xe, xo)
                : fast ? nf4_row_avx2(bytes, s, code16, block, cols, xe, xo)
                       : nf4_row_scalar(bytes, s, code16, block, cols, xe, xo);
        y[r] = accumulate ? y[r] + v : v;
    }
}

__attribute__((target("avx2,fma")))
static float int8_row_avx2(const int8_t *w, long cols, const float *x) {
    __m256 acc = _mm256_setzero_ps();
    long c = 0;
    for (; c + 8 <= cols; c += 8) {
        __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(w + c)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(x + c), acc);
    }
    float total = hsum256(acc);
    for (; c < cols; c++) total += (float)w[c] * x[c];
    return total;
}

__attribute__((target("avx512f")))
static float int8_row_avx512(const int8_t *w, long cols, const float *x) {
    __m512 acc = _mm512_setzero_ps();
    long c = 0;
    for (; c + 16 <= cols; c += 16) {
        __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + c)));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(x + c), acc);
    }
    float total = _mm512_reduce_add_ps(acc);
    for (; c < cols; c++) total += (float)w[c] * x[c];
    return total;
}

void qk_int8_matvec(const int8_t *codes, const float *row_scales, long cols, long row0, long nrows,
                    const float *x, float *y, int accumulate) {
    int wide = qk_has_avx512(), fast = qk_has_avx2();
    for (long r = row0; r < row0 + nrows; r++) {
        const int8_t *w = codes + r * cols;
        float v;
        if (wide) v = int8_row_avx512(w, cols, x);
        else if (fast) v = int8_row_avx2(w, cols, x);
        else { v = 0; for (long c = 0; c < cols; c++) v += (float)w[c] * x[c]; }
        v *= row_scales[r];
        y[r] = accumulate ? y[r] + v : v;
    }
}

/* Y[m][r] = scale_r * sum_c W[r][c] X[m][c] for a tile of up to 4 rows r of W and 4 rows m of X,
   as the NF4 tile: each widened vector of 16 codes serves the 4 rows of X, each load of X the 4
   rows of W. The row scale multiplies the finished sum, as in the matrix-vector kernel. */
__attribute__((target("avx512f"), always_inline))
static inline void int8_tile(const int8_t *w, long cols, const float *x, long ldx, const int nw, const int nx,
                             float out[4][4]) {
    __m512 acc[4][4];
    for (int k = 0; k < nw; k++)
        for (int m = 0; m < nx; m++) acc[k][m] = _mm512_setzero_ps();
    for (long c = 0; c < cols; c += 16) {
        __m512 wv[4];
        for (int k = 0; k < nw; k++)
            wv[k] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + k * cols + c))));
        for (int m = 0; m < nx; m++) {
            __m512 xv = _mm512_loadu_ps(x + m * ldx + c);
            for (int k = 0; k < nw; k++) acc[k][m] = _mm512_fmadd_ps(wv[k], xv, acc[k][m]);
        }
    }
    for (int k = 0; k < nw; k++)
        for (int m = 0; m < nx; m++) out[k][m] = _mm512_reduce_add_ps(acc[k][m]);
}

int qk_int8_has_matmul(long cols) { return qk_has_avx512() && cols % 16 == 0; }

__attribute__((target("avx512f")))
void qk_int8_matmul(const int8_t *codes, const float *row_scales, long cols, long row0, long nrows,
                    const float *x, long nx, float *y, long ldy, int accumulate) {
    for (long r = row0; r < row0 + nrows; r += 4) {
        int nw = row0 + nrows - r >= 4 ? 4 : 1;
        for (long m = 0; m < nx; m += 4) {
            int n = nx - m >= 4 ? 4 : 1;
            float v[4][4];
            const int8_t *w = codes + r * cols;
            const float *xm = x + m * cols;
            if (nw == 4 && n == 4) int8_tile(w, cols, xm, cols, 4, 4, v);
            else if (nw == 4) int8_tile(w, cols, xm, cols, 4, 1, v);
            else if (n == 4) int8_tile(w, cols, xm, cols, 1, 4, v);
            else int8_tile(w, cols, xm, cols, 1, 1, v);
            for (int k = 0; k < nw; k++)
                for (int j = 0; j < n; j++) {
                    float *o = y + (m + j) * ldy + r + k;
                    float value = v[k][j] * row_scales[r + k];
                    *o = accumulate ? *o + value : value;
                }
            m += n - 4;   /* a single row advances by 1 */
        }
        r += nw - 4;
    }
}
