// Memory read bandwidth of this machine with every core reading: the ceiling of batch-1 decoding,
// which streams every weight once per token (docs/benchmarks.md, "Run 6").
//   gcc -O3 -march=native -ffast-math -fopenmp tools/bench/membw.c -o /tmp/membw && /tmp/membw
// Sums a 1 GiB float array five times (-ffast-math lets the sum vectorise with several
// accumulators, so the loop is bound by memory, not by the add latency) and prints GB/s per pass.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
    const size_t n = (size_t)1 << 28;
    float *a = aligned_alloc(64, n * sizeof(float));
    if (!a) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < n; i++) a[i] = 1.0f;
    for (int pass = 0; pass < 5; pass++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        float sum = 0;
        #pragma omp parallel for reduction(+ : sum)
        for (size_t i = 0; i < n; i++) sum += a[i];
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("%.1f GB/s (%d threads, checksum %.0f)\n", (double)(n * sizeof(float)) / seconds / 1e9,
               omp_get_max_threads(), sum);
    }
    free(a);
    return 0;
}
