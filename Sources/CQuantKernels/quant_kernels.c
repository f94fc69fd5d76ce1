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

void qk_nf4_dequantize_block(const uint8_t *packed, const float *scales, const float *code16, long block, long cols,
                             long row0, long nrows, long col0, long ncols, float *out) {
    for (long r = 0; r < nrows; r++) {
        long base = (row0 + r) * cols + col0;
        float *o = out + r * ncols;
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

/* Four rows at once: the four dot products are independent chains (one row alone waits on the
   latency of its own fused multiply-adds), and each load of x serves all four rows. */
__attribute__((target("avx512f")))
static void nf4_rows4_avx512(const uint8_t *bytes, long row_bytes, const float *scales, long blocks_per_row,
                             const float *code16, long block, const float *xe, const float *xo, float out[4]) {
    __m512 lut = _mm512_loadu_ps(code16);
    __m512i mask = _mm512_set1_epi32(0x0F);
    __m512 total[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (long b = 0; b < blocks_per_row; b++) {
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (long j = b * block / 2; j < (b + 1) * block / 2; j += 16) {
            __m512 e = _mm512_loadu_ps(xe + j), o = _mm512_loadu_ps(xo + j);
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(bytes + k * row_bytes + j)));
                acc[k] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), e, acc[k]);
                acc[k] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_and_si512(v, mask), lut), o, acc[k]);
            }
        }
        for (int k = 0; k < 4; k++) total[k] = _mm512_fmadd_ps(acc[k], _mm512_set1_ps(scales[k * blocks_per_row + b]), total[k]);
    }
    for (int k = 0; k < 4; k++) out[k] = _mm512_reduce_add_ps(total[k]);
}

void qk_nf4_matvec(const uint8_t *packed, const float *scales, const float *code16, long block,
                   long cols, long row0, long nrows, const float *xe, const float *xo, float *y, int accumulate) {
    int wide = qk_has_avx512() && block % 32 == 0, fast = qk_has_avx2();
    long blocks_per_row = cols / block;
    long r = row0;
    if (wide) {
        for (; r + 4 <= row0 + nrows; r += 4) {
            float v[4];
            nf4_rows4_avx512(packed + r * cols / 2, cols / 2, scales + r * blocks_per_row, blocks_per_row, code16, block, xe, xo, v);
            for (int k = 0; k < 4; k++) y[r + k] = accumulate ? y[r + k] + v[k] : v[k];
        }
    }
    for (; r < row0 + nrows; r++) {
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
