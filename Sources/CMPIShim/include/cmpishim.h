#ifndef CMPISHIM_H
#define CMPISHIM_H
#include <stddef.h>
#include <stdint.h>

/// Thin wrappers over Open MPI for Swift: Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT,
/// MPI_SUM, ...) are macros over addresses of library globals, which Swift cannot import.
/// Every call works on MPI_COMM_WORLD and returns MPI's error code (MPI_SUCCESS = 0); counts
/// larger than an int are split by the callers.

/// MPI_Init_thread with MPI_THREAD_FUNNELED (only the main thread calls MPI); errors return
/// instead of aborting (MPI_ERRORS_RETURN), so the caller can name what failed.
int llmft_mpi_init(void);
int llmft_mpi_initialized(void);
int llmft_mpi_finalize(void);
int llmft_mpi_rank(int *rank);
int llmft_mpi_size(int *size);
/// In-place sum over all ranks.
int llmft_mpi_allreduce_float_sum(float *buffer, int count);
int llmft_mpi_allreduce_double_sum(double *buffer, int count);
int llmft_mpi_allreduce_int_max(int *buffer, int count);
int llmft_mpi_bcast_bytes(void *buffer, int count, int root);
/// Each rank's `count` bytes, in rank order, into `out` (size x count bytes).
int llmft_mpi_allgather_bytes(const void *mine, int count, void *out);
int llmft_mpi_barrier(void);
/// Ends every rank of the job (mpirun stops them all) with `code`.
void llmft_mpi_abort(int code);
/// MPI's text for an error code, into `out` (at most `capacity` bytes with the terminating 0).
void llmft_mpi_error_string(int code, char *out, int capacity);
/// The processor (host) name.
void llmft_mpi_processor_name(char *out, int capacity);

#endif
