#include <cstdio>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include "cuda/cuda_info.h"

extern "C" int dd2_cuda_device_count(char *why, int why_len) {
    int count = 0; /* cudaGetDeviceCount leaves it unwritten when there is no device */
    cudaError_t err = cudaGetDeviceCount(&count);
    if (why && why_len > 0) why[0] = 0;
    if (err != cudaSuccess) {
        if (why) snprintf(why, (size_t)why_len, "%s: %s", cudaGetErrorName(err), cudaGetErrorString(err));
        (void)cudaGetLastError(); /* clear the sticky error state */
        return 0;
    }
    return count;
}

extern "C" void dd2_cuda_versions(char *buf, int len) {
    int rt = 0, drv = 0, nccl = 0;
    cudaRuntimeGetVersion(&rt);
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    ncclGetVersion(&nccl);
    int cublas_ver = CUBLAS_VERSION;
    char drv_s[32];
    if (drv > 0)
        snprintf(drv_s, sizeof drv_s, "%d.%d", drv / 1000, (drv % 1000) / 10);
    else
        snprintf(drv_s, sizeof drv_s, "none");
    snprintf(buf, (size_t)len, "CUDA runtime %d.%d, driver %s, cuBLAS %d.%d.%d, NCCL %d.%d.%d", rt / 1000,
             (rt % 1000) / 10, drv_s, cublas_ver / 10000, (cublas_ver / 100) % 100, cublas_ver % 100,
             nccl / 10000, (nccl / 100) % 100, nccl % 100);
}
