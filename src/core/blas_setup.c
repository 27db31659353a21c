#include "core/blas_setup.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *openblas_get_corename(void);

const char *dd2_blas_corename(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

/* Kernels that OpenBLAS falls back to when it does not recognise the CPU. */
static int is_generic_core(const char *name) {
    static const char *const generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                          "Atom", "Katmai", "Coppermine", "Northwood", "Banias"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (strcasecmp(name, generic[i]) == 0) return 1;
    return 0;
}

const char *dd2_blas_wanted_coretype(void) {
    if (getenv("OPENBLAS_CORETYPE")) return NULL; /* the user (or a previous exec) decided */
    if (!is_generic_core(dd2_blas_corename())) return NULL;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
#endif
    return NULL;
}
