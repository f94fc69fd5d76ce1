#ifndef QUANT_KERNELS_H
#define QUANT_KERNELS_H
#include <stdint.h>

/* Kernels over quantized Linear weights [rows = out, cols = in] (see Sources/Quantization).
   Matrix-vector products use AVX-512F, else AVX2+FMA, else scalar code, chosen at run time; the
   products of a few rows (qk_*_matmul) and the vectorised NF4 dequantization need AVX-512F.
   NF4: packed indices, two per byte (the first element in the high nibble), one float scale per
   block of `block` consecutive elements of the flat storage. int8: one float scale per row
   (absmax / 127 already divided). */

/* out[r - row0][c - col0] = W[r][c] for r in [row0, row0 + nrows), c in [col0, col0 + ncols):
   whole rows (col0 0, ncols cols) for products with W, a block of columns for products with W's
   transpose. */
void qk_nf4_dequantize_block(const uint8_t *packed, const float *scales, const float *code16, long block, long cols,
                             long row0, long nrows, long col0, long ncols, float *out);
void qk_int8_dequantize_block(const int8_t *codes, const float *row_scales, long cols,
                              long row0, long nrows, long col0, long ncols, float *out);

/* y[r] = sum_c W[r][c] * x[c] (+ y[r] when accumulate) for r in [row0, row0 + nrows).
   The NF4 kernel needs cols % block == 0 and block % 16 == 0 and reads x prepared once per vector:
   with qk_nf4_uses_planes(block, cols) (AVX-512F, block and cols multiples of 64) as `planes`
   (qk_nf4_prepare, qk_nf4_prepared_count(cols) floats; x reordered to the order in which the
   kernel unpacks the codes, see quant_kernels.c), otherwise as `xe`/`xo`, x's even and odd
   elements (qk_deinterleave). */
void qk_deinterleave(const float *x, long cols, float *xe, float *xo);
long qk_nf4_prepared_count(long cols);
void qk_nf4_prepare(const float *x, long cols, float *planes);
int qk_nf4_uses_planes(long block, long cols);
void qk_nf4_matvec(const uint8_t *packed, const float *scales, const float *code16, long block,
                   long cols, long row0, long nrows, const float *xe, const float *xo, const float *planes,
                   float *y, int accumulate);
/* Y[m][r] = sum_c W[r][c] * X[m][c] (+ Y[m][r] when accumulate) for m < nx, r in [row0, row0 +
   nrows); Y[m][r] at y[m * ldy + r]. Needs qk_nf4_uses_planes(block, cols); `planes` holds the nx
   rows of X, each prepared by qk_nf4_prepare (qk_nf4_prepared_count(cols) floats apart). */
void qk_nf4_matmul(const uint8_t *packed, const float *scales, const float *code16, long block, long cols,
                   long row0, long nrows, const float *planes, long nx, float *y, long ldy, int accumulate);
/* Y[m][r] = sum_c W[r][c] * X[m][c] (+ Y[m][r] when accumulate) for m < nx (X row-major [nx, cols]),
   r in [row0, row0 + nrows); Y[m][r] at y[m * ldy + r]. Needs qk_int8_has_matmul(cols). */
int qk_int8_has_matmul(long cols);
void qk_int8_matmul(const int8_t *codes, const float *row_scales, long cols, long row0, long nrows,
                    const float *x, long nx, float *y, long ldy, int accumulate);
void qk_int8_matvec(const int8_t *codes, const float *row_scales, long cols, long row0, long nrows,
                    const float *x, float *y, int accumulate);

/* 1 when the AVX2+FMA paths run on this CPU. */
int qk_has_avx2(void);
#endif
