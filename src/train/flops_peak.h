/* Measured floating-point peak of this CPU core: a register-only FMA loop (fp32) in the widest
 * vector ISA the CPU supports (AVX-512, else AVX2+FMA, else scalar), timed for `seconds`.
 * Used by `dd2 bench` to report GEMM speed as a percentage of what the core can do. */
#ifndef DD2_TRAIN_FLOPS_PEAK_H
#define DD2_TRAIN_FLOPS_PEAK_H

/* GFLOP/s of one thread (an FMA counts as 2 flops); `isa` receives "avx512", "avx2" or "scalar". */
double dd2_measure_fma_peak(double seconds, const char **isa);

#endif
