/* OpenBLAS kernel selection check.
 *
 * OpenBLAS 0.3.21 (Debian 12) misdetects some recent CPUs (e.g. Xeons with AVX-512/AMX) as
 * "Prescott" and runs sgemm 3-4x slower. The kernel is chosen when the library loads, so the
 * fix is to set OPENBLAS_CORETYPE and re-execute the program before any work is done.
 *
 * dd2_blas_wanted_coretype() returns the core type to force (e.g. "SkylakeX", "Haswell") when
 * the detected one is a slow generic pick on a CPU that supports better kernels, or NULL when
 * nothing needs doing (already good, already forced by the user, or not OpenBLAS).
 * The driver sets the variable and re-executes; DD2_BLAS_REEXEC marks the second run so
 * that it happens at most once and can be logged.
 */
#ifndef DD2_CORE_BLAS_SETUP_H
#define DD2_CORE_BLAS_SETUP_H

/* Name of the OpenBLAS core in use (e.g. "SkylakeX", "Prescott"). */
const char *dd2_blas_corename(void);

/* Core type to force via OPENBLAS_CORETYPE, or NULL when the current choice is fine. */
const char *dd2_blas_wanted_coretype(void);

#endif
