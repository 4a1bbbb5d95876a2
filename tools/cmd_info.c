/* digitnet info: what this machine and build compute with, so that every benchmark figure can say
 * which path made it. */
#include "cli.h"
#include "dist.h"

#include <stdlib.h>

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int cmd_info(cli_options *o)
{
    if (o->n_positional)
        return cli_failf("info takes no arguments (got '%s')", o->positional[0]);
    dn_runtime_info info;
    dn_runtime_info_get(&info);
    const char *wait = env_or("OMP_WAIT_POLICY", "unset"), *spin = env_or("GOMP_SPINCOUNT", "unset");
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "version", info.version);
        cJSON_AddStringToObject(j, "cpu", info.cpu_model);
        cJSON_AddStringToObject(j, "cpu_features", info.cpu_features);
        cJSON_AddStringToObject(j, "kernels", info.conv_kernels);
        cJSON_AddStringToObject(j, "elementwise_clone", info.simd_clone);
        cJSON_AddStringToObject(j, "blas", info.blas);
        cJSON_AddNumberToObject(j, "threads", info.threads);
        cJSON_AddStringToObject(j, "omp_wait_policy", wait);
        cJSON_AddStringToObject(j, "gomp_spincount", spin);
        cJSON_AddBoolToObject(j, "flush_to_zero", info.flush_to_zero);
        cJSON_AddStringToObject(j, "compiler", info.compiler);
        cJSON_AddStringToObject(j, "build_flags", info.build_flags);
        cJSON_AddStringToObject(j, "mpi", cli_dist_describe());
        cli_print_json(j);
        return 0;
    }
    printf("digitnet %s\n", info.version);
    printf("CPU:          %s\n", info.cpu_model);
    printf("SIMD:         %s\n", info.cpu_features[0] ? info.cpu_features : "(none of sse4.2 .. avx512 seen)");
    printf("Kernels:      %s (convolution, pooling, matrix products); element-wise: %s clone%s\n", info.conv_kernels,
           info.simd_clone, getenv("DIGITNET_SIMD") ? " (DIGITNET_SIMD is set)" : "");
    printf("BLAS:         %s\n", info.blas);
    printf("Threads:      %d (OpenMP; OMP_WAIT_POLICY %s, GOMP_SPINCOUNT %s)\n", info.threads, wait, spin);
    printf("Float mode:   %s\n", info.flush_to_zero ? "flush-to-zero + denormals-are-zero in training and inference"
                                                     : "IEEE denormals (no flush-to-zero on this CPU)");
    printf("Compiler:     %s\n", info.compiler);
    printf("Build flags:  %s\n", info.build_flags);
    printf("MPI:          %s\n", cli_dist_describe());
    return 0;
}
