// OpenBLAS's CBLAS interface (Debian: libopenblas-dev); it also declares
// openblas_set_num_threads. Every matrix product in this project goes through cblas_sgemm.
#include <cblas.h>
