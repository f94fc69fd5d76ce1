/*
 * allreduce_bench: time MPI_Allreduce (sum) of float32 buffers the size of our gradients and check
 * the sum, to measure what one data-parallel training step pays for communication.
 *
 *   make -C tools/mpi                                  # builds tools/mpi/.build/allreduce_bench
 *   mpirun -np 2 tools/mpi/.build/allreduce_bench      # shared memory on this machine
 *   tools/mpi/netns-mpirun.sh -np 2 tools/mpi/.build/allreduce_bench   # TCP over the veth pair
 *   allreduce_bench [--seconds S] [COUNT...]           # COUNT in floats, e.g. 1e3 7090946 1.24e8
 *
 * Each rank r fills its buffer with x[i] = (r + 1) * (i % 13 + 1), so the all-reduced value is
 * (i % 13 + 1) * N (N + 1) / 2: a small integer, exact in float32 whatever the reduction order,
 * and checked on every element after every timed call. The buffer is reduced in place
 * (MPI_IN_PLACE), as a training step would reduce its fused gradient buffer.
 *
 * Per size it prints the time of one call (the slowest rank's, min and median over the repeats),
 * the algorithm bandwidth B / t (B = 4 * COUNT bytes) and the bus bandwidth 2 (N - 1) / N * B / t:
 * a ring all-reduce moves 2 (N - 1) / N * B bytes in and out of every rank (N - 1 reduce-scatter
 * steps and N - 1 all-gather steps of B / N bytes each), so the bus bandwidth is the link speed
 * the run achieved, comparable across N (docs/distributed.md, "Cost model").
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double default_counts[] = {1e3, 1e4, 1e5, 1e6, 7090946, 124439808};

static void fill(float *x, long n, int rank) {
    for (long i = 0; i < n; i++) x[i] = (float)((rank + 1) * (i % 13 + 1));
}

/* Returns the index of the first wrong element, or -1 when all are right. */
static long first_wrong(const float *x, long n, int size) {
    const long ranks_sum = (long)size * (size + 1) / 2;
    for (long i = 0; i < n; i++)
        if (x[i] != (float)((i % 13 + 1) * ranks_sum)) return i;
    return -1;
}

static int compare_doubles(const void *a, const void *b) {
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

/* One timed, checked all-reduce; returns the slowest rank's time in seconds. */
static double timed_allreduce(float *x, long n, int rank, int size) {
    fill(x, n, rank);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double local = MPI_Wtime() - t0, slowest = 0;
    long wrong = first_wrong(x, n, size);
    if (wrong >= 0) {
        fprintf(stderr, "allreduce_bench: rank %d: wrong sum at element %ld of %ld: %g, expected %g\n",
                rank, wrong, n, x[wrong], (double)((wrong % 13 + 1) * (long)size * (size + 1) / 2));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return slowest;
}

/* Repeats until `seconds` of timed calls and at least 3 calls (at most 1000); every rank takes the
 * same decisions because they all see the same reduced times. */
static double payload_bytes = 0; /* 2 (N - 1) / N * B summed over every call (warm-ups included) */

static void bench_one(long n, double seconds, int rank, int size) {
    float *x = malloc((size_t)n * sizeof(float));
    if (!x) { fprintf(stderr, "allreduce_bench: rank %d: cannot allocate %ld floats\n", rank, n); MPI_Abort(MPI_COMM_WORLD, 1); }
    enum { max_repeats = 1000 };
    static double times[max_repeats];
    timed_allreduce(x, n, rank, size); /* warm-up: connections, buffers */
    int repeats = 0;
    double total = 0;
    while (repeats < max_repeats && (repeats < 3 || total < seconds)) {
        times[repeats] = timed_allreduce(x, n, rank, size);
        total += times[repeats++];
    }
    free(x);
    payload_bytes += (repeats + 1) * 2.0 * (size - 1) / size * 4.0 * n;
    qsort(times, repeats, sizeof(double), compare_doubles);
    double median = times[repeats / 2], bytes = 4.0 * n;
    if (rank == 0)
        printf("%11ld %10.3f %7d %11.3f %11.3f %9.3f %9.3f\n", n, bytes / 1e6, repeats, times[0] * 1e3,
               median * 1e3, bytes / median / 1e9, 2.0 * (size - 1) / size * bytes / median / 1e9);
    fflush(stdout);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double seconds = 2.0;
    int first_count = 1;
    if (argc > 2 && strcmp(argv[1], "--seconds") == 0) { seconds = atof(argv[2]); first_count = 3; }
    int counts = argc - first_count;
    char name[MPI_MAX_PROCESSOR_NAME] = {0}, *names = rank == 0 ? malloc((size_t)size * MPI_MAX_PROCESSOR_NAME) : NULL;
    int length;
    MPI_Get_processor_name(name, &length);
    MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("# MPI_Allreduce(MPI_IN_PLACE, float32, MPI_SUM), %d ranks, >= %.1f s per size; ranks on:", size, seconds);
        for (int r = 0; r < size; r++) printf(" %s", names + (size_t)r * MPI_MAX_PROCESSOR_NAME);
        printf("\n");
        free(names);
        printf("# %9s %10s %7s %11s %11s %9s %9s\n", "floats", "MB", "repeats", "min ms", "median ms", "algbw GB/s", "busbw GB/s");
    }
    if (counts == 0)
        for (size_t i = 0; i < sizeof default_counts / sizeof *default_counts; i++)
            bench_one((long)default_counts[i], seconds, rank, size);
    for (int i = 0; i < counts; i++) {
        double count = strtod(argv[first_count + i], NULL);
        if (count < 1 || count > 2147483647.0) {
            if (rank == 0) fprintf(stderr, "allreduce_bench: COUNT must be 1..2^31-1 floats, got '%s'\n", argv[first_count + i]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        bench_one((long)count, seconds, rank, size);
    }
    if (rank == 0)
        printf("# every rank sent and received at least %.1f MB of payload: 2 (N - 1) / N * B per call\n", payload_bytes / 1e6);
    MPI_Finalize();
    return 0;
}
