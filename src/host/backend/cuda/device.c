/* The CUDA backend's device and build information: the cuBLAS/cuRAND status strings used by
 * cuda_check.h, ebmc_cuda_device_count, and the CUDA part of ebmc_print_build_info (versions
 * built against and found, the devices, the backend AUTO would pick). */
#include "backend/cuda/cuda_internal.h"

#include <curand.h>
#include <library_types.h>
#include <stdio.h>

const char *ebmc_cublas_status_str(int status) {
    return cublasGetStatusString((cublasStatus_t)status);
}

const char *ebmc_curand_status_str(int status) {
    switch ((curandStatus_t)status) {
    case CURAND_STATUS_SUCCESS: return "CURAND_STATUS_SUCCESS";
    case CURAND_STATUS_VERSION_MISMATCH: return "CURAND_STATUS_VERSION_MISMATCH";
    case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED";
    case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED";
    case CURAND_STATUS_TYPE_ERROR: return "CURAND_STATUS_TYPE_ERROR";
    case CURAND_STATUS_OUT_OF_RANGE: return "CURAND_STATUS_OUT_OF_RANGE";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "CURAND_STATUS_LENGTH_NOT_MULTIPLE";
    case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "CURAND_STATUS_DOUBLE_PRECISION_REQUIRED";
    case CURAND_STATUS_LAUNCH_FAILURE: return "CURAND_STATUS_LAUNCH_FAILURE";
    case CURAND_STATUS_PREEXISTING_FAILURE: return "CURAND_STATUS_PREEXISTING_FAILURE";
    case CURAND_STATUS_INITIALIZATION_FAILED: return "CURAND_STATUS_INITIALIZATION_FAILED";
    case CURAND_STATUS_ARCH_MISMATCH: return "CURAND_STATUS_ARCH_MISMATCH";
    case CURAND_STATUS_INTERNAL_ERROR: return "CURAND_STATUS_INTERNAL_ERROR";
    default: break;
    }
    return "unknown cuRAND status";
}

int ebmc_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* do not leave the error for a later check to find */
        return 0;
    }
    return n > 0 ? n : 0;
}

static void print_cuda_version(FILE *f, const char *what, int v) {
    /* CUDA encodes 1000*major + 10*minor */
    if (v <= 0)
        fprintf(f, "%s: none\n", what);
    else
        fprintf(f, "%s: %d.%d\n", what, v / 1000, (v % 1000) / 10);
}

void ebmc_cuda_print_build_info(FILE *f) {
    fprintf(f, "CUDA backend: built\n");
    print_cuda_version(f, "CUDA runtime (built against)", CUDART_VERSION);
    int rt = 0, drv = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess) rt = 0;
    print_cuda_version(f, "CUDA runtime (found)", rt);
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    print_cuda_version(f, "CUDA driver (supports up to)", drv);
    (void)cudaGetLastError();

    const size_t cv = cudnnGetVersion(); /* 10000*major + 100*minor + patch since cuDNN 9 */
    fprintf(f, "cuDNN: built against %d.%d.%d, found %zu.%zu.%zu\n", CUDNN_MAJOR, CUDNN_MINOR,
            CUDNN_PATCHLEVEL, cv / 10000, (cv % 10000) / 100, cv % 100);
    int bmaj = 0, bmin = 0, bpat = 0;
    if (cublasGetProperty(MAJOR_VERSION, &bmaj) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(MINOR_VERSION, &bmin) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(PATCH_LEVEL, &bpat) == CUBLAS_STATUS_SUCCESS)
        fprintf(f, "cuBLAS: %d.%d.%d\n", bmaj, bmin, bpat);
    else
        fprintf(f, "cuBLAS: version unavailable\n");
    int rv = 0;
    if (curandGetVersion(&rv) == CURAND_STATUS_SUCCESS)
        fprintf(f, "cuRAND: %d (%d.%d.%d)\n", rv, rv / 1000, (rv % 1000) / 100, rv % 100);
    else
        fprintf(f, "cuRAND: version unavailable\n");

    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        count = 0;
    }
    char first[256] = "";
    for (int i = 0; i < count; i++) {
        struct cudaDeviceProp prop;
        cudaError_t pe = cudaGetDeviceProperties(&prop, i);
        if (pe != cudaSuccess) {
            (void)cudaGetLastError();
            fprintf(f, "device %d: properties unavailable (%s)\n", i, cudaGetErrorString(pe));
            continue;
        }
        fprintf(f, "device %d: %s, compute capability %d.%d, %.1f GiB, %d SMs\n", i, prop.name,
                prop.major, prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
                prop.multiProcessorCount);
        if (i == 0) snprintf(first, sizeof first, "%s", prop.name);
    }
    if (count > 0)
        fprintf(f, "backend: cuda (device 0: %s)\n", first);
    else if (e != cudaSuccess)
        fprintf(f, "backend: cpu (no CUDA device: %s)\n", cudaGetErrorString(e));
    else
        fprintf(f, "backend: cpu (no CUDA device: cudaGetDeviceCount found none)\n");
}
