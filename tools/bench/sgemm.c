// The machine's sgemm rate through Debian's OpenBLAS (the library our tools link), to print
// beside every benchmark ratio: our machines' speed changes from day to day.
//   cc -O2 tools/bench/sgemm.c -o /tmp/sgemm -lopenblas && /tmp/sgemm
// Times C[1024x3072] = A[1024x768] B[768x3072] (GPT-2 small's MLP up-projection of 1024 rows),
// ten times after one warm-up, and prints the median as one JSON line.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    const int m = 1024, k = 768, n = 3072, reps = 10;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
    if (!a || !b || !c) { fprintf(stderr, "out of memory\n"); return 1; }
    for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 7) * 0.01f;
    for (long i = 0; i < (long)k * n; i++) b[i] = (float)(i % 5) * 0.01f;
    double seconds[reps];
    for (int r = -1; r < reps; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r >= 0) seconds[r] = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
    qsort(seconds, reps, sizeof(double), compare);
    double median = (seconds[reps / 2 - 1] + seconds[reps / 2]) / 2;
    printf("{\"case\": \"sgemm\", \"m\": %d, \"k\": %d, \"n\": %d, \"threads\": %d, \"median_s\": %.6f, \"gflops\": %.1f}\n",
           m, k, n, openblas_get_num_threads(), median, 2.0 * m * k * n / median / 1e9);
    free(a); free(b); free(c);
    return 0;
}
