#include "cmpishim.h"
#include <mpi.h>
#include <string.h>

int llmft_mpi_init(void) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int llmft_mpi_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}

int llmft_mpi_finalize(void) { return MPI_Finalize(); }
int llmft_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int llmft_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

int llmft_mpi_allreduce_float_sum(float *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int llmft_mpi_allreduce_double_sum(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int llmft_mpi_allreduce_int_max(int *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
}

int llmft_mpi_bcast_bytes(void *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_BYTE, root, MPI_COMM_WORLD);
}

int llmft_mpi_allgather_bytes(const void *mine, int count, void *out) {
    return MPI_Allgather(mine, count, MPI_BYTE, out, count, MPI_BYTE, MPI_COMM_WORLD);
}

int llmft_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
void llmft_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void llmft_mpi_error_string(int code, char *out, int capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    text[length < MPI_MAX_ERROR_STRING ? length : MPI_MAX_ERROR_STRING - 1] = 0;
    strncpy(out, text, (size_t)capacity);
    if (capacity > 0) out[capacity - 1] = 0;
}

void llmft_mpi_processor_name(char *out, int capacity) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    if (MPI_Get_processor_name(name, &length) != MPI_SUCCESS) length = 0;
    name[length < MPI_MAX_PROCESSOR_NAME ? length : MPI_MAX_PROCESSOR_NAME - 1] = 0;
    strncpy(out, name, (size_t)capacity);
    if (capacity > 0) out[capacity - 1] = 0;
}
