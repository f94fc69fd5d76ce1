/* Times the quantized kernels of Sources/CQuantKernels on one thread for the Linear shapes of a
   GPT-2 size (per token: the four projections of every block, then the tied int8 head), as
   thread CPU time, so that another process sharing the core does not count:
     clang -O2 -I Sources/CQuantKernels/include tools/bench/quant_kernels.c \
         Sources/CQuantKernels/quant_kernels.c -o /tmp/quant-kernels -lopenblas
     OPENBLAS_NUM_THREADS=1 /tmp/quant-kernels [C=1024] [layers=24] [prompt rows=20]
   Prints one JSON line: NF4 and int8 matrix-vector products over all blocks, the int8 head, the
   NF4 dequantization rate, and one [3C, C] NF4 product with `prompt rows` rows read directly
   (qk_nf4_matmul) against dequantizing into a float tile and sgemm (a fresh tile, as the Swift
   code allocates one per product, and a reused one). Random codes: timing only. */
#include "quant_kernels.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *filled(long bytes) {
    unsigned char *p = malloc(bytes);
    for (long i = 0; i < bytes; i++) p[i] = (unsigned char)rand();
    return p;
}

static float *floats(long n, float lo, float hi) {
    float *p = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) p[i] = lo + (hi - lo) * (rand() / (float)RAND_MAX);
    return p;
}

int main(int argc, char **argv) {
    long C = argc > 1 ? atol(argv[1]) : 1024, L = argc > 2 ? atol(argv[2]) : 24, M = argc > 3 ? atol(argv[3]) : 20;
    const long V = 50257, shapes[4][2] = {{3 * C, C}, {C, C}, {4 * C, C}, {C, 4 * C}};   /* [out, in] */
    long per_block = 0;
    for (int s = 0; s < 4; s++) per_block += shapes[s][0] * shapes[s][1];
    float code16[16];
    for (int i = 0; i < 16; i++) code16[i] = -1 + i * (2.0f / 15);
    uint8_t *nf4 = filled(per_block / 2 * L);
    float *nf4_scales = floats(per_block / 64 * L, 0, 0.1f);
    int8_t *int8 = filled(per_block * L), *head = filled(V * C);
    float *row_scales = floats(4 * C > V ? 4 * C : V, 0, 0.01f);
    float *x = floats(M * 4 * C, -1, 1), *planes = malloc(M * (4 * C + 128) * sizeof(float));
    float *xe = malloc(2 * C * sizeof(float)), *xo = malloc(2 * C * sizeof(float)), *y = malloc(M * V * sizeof(float));

    double t0 = cpu_seconds();
    for (long l = 0, off = 0; l < L; l++)
        for (int s = 0; s < 4; s++) {
            long rows = shapes[s][0], cols = shapes[s][1];
            qk_nf4_prepare(x, cols, planes);
            qk_deinterleave(x, cols, xe, xo);
            qk_nf4_matvec(nf4 + off / 2, nf4_scales + off / 64, code16, 64, cols, 0, rows, xe, xo, planes, y, 0);
            off += rows * cols;
        }
    double t1 = cpu_seconds();
    for (long l = 0, off = 0; l < L; l++)
        for (int s = 0; s < 4; s++) {
            qk_int8_matvec(int8 + off, row_scales, shapes[s][1], 0, shapes[s][0], x, y, 0);
            off += shapes[s][0] * shapes[s][1];
        }
    double t2 = cpu_seconds();
    qk_int8_matvec(head, row_scales, C, 0, V, x, y, 0);
    double t3 = cpu_seconds();

    long R = 3 * C;
    float *tile = malloc(R * C * sizeof(float));
    qk_nf4_dequantize_block(nf4, nf4_scales, code16, 64, C, 0, R, 0, C, tile);   /* pages made resident */
    double t4 = cpu_seconds();
    qk_nf4_dequantize_block(nf4, nf4_scales, code16, 64, C, 0, R, 0, C, tile);
    double t5 = cpu_seconds();
    for (long m = 0; m < M; m++) qk_nf4_prepare(x + m * C, C, planes + m * qk_nf4_prepared_count(C));
    qk_nf4_matmul(nf4, nf4_scales, code16, 64, C, 0, R, planes, M, y, R, 0);
    double t6 = cpu_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, R, C, 1, x, C, tile, C, 0, y, R);
    double t7 = cpu_seconds();
    float *fresh = malloc(R * C * sizeof(float));
    qk_nf4_dequantize_block(nf4, nf4_scales, code16, 64, C, 0, R, 0, C, fresh);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, R, C, 1, x, C, fresh, C, 0, y, R);
    double t8 = cpu_seconds();

    printf("{\"case\": \"quant-kernels\", \"C\": %ld, \"layers\": %ld, \"nf4_blocks_ms\": %.2f, \"int8_blocks_ms\": %.2f, "
           "\"int8_head_ms\": %.2f, \"nf4_dequantize_ns_per_weight\": %.3f, \"prompt_rows\": %ld, "
           "\"nf4_prompt_direct_ms\": %.2f, \"nf4_prompt_reused_tile_ms\": %.2f, \"nf4_prompt_fresh_tile_ms\": %.2f}\n",
           C, L, 1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2), 1e9 * (t5 - t4) / (R * C), M, 1e3 * (t6 - t5),
           1e3 * ((t5 - t4) + (t7 - t6)), 1e3 * (t8 - t7));
    return 0;
}
