/* What the CUDA backend can see (C-callable; implemented in src/cuda/device_info.cu).
 * Only compiled with `make CUDA=1` (DD2_CUDA defined). Uses the runtime API only, so a binary
 * built with CUDA starts and reports 0 devices on a machine without a GPU or driver. */
#ifndef DD2_CUDA_INFO_H
#define DD2_CUDA_INFO_H

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable devices (0 when none or no driver). `why` receives the runtime's reason when
 * the count is 0 because of an error (empty string otherwise). Never fails. */
int dd2_cuda_device_count(char *why, int why_len);

/* "CUDA runtime X.Y, driver X.Y (or none), cuBLAS X.Y.Z, NCCL X.Y.Z" into buf. */
void dd2_cuda_versions(char *buf, int len);

#ifdef __cplusplus
}
#endif

#endif
