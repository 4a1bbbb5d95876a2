/* dn_runtime_info_get: what this process computes with (CPU, kernels, threads, build). */
#include "kernels/kernels.h"

#include "internal.h"

#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef DN_BUILD_OPT
#define DN_BUILD_OPT "unknown"
#endif

static void cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *v = strchr(line, ':');
        if (!v)
            break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(buf, size, "%.*s", (int)strcspn(v, "\n"), v);
        break;
    }
    fclose(f);
}

void dn_runtime_info_get(dn_runtime_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    info->version = DN_VERSION;
    cpu_model(info->cpu_model, sizeof info->cpu_model);
    const int width = dn_kernels_simd_width();
    info->conv_kernels = width == 512 ? "avx512" : width == 256 ? "avx2" : "portable";
    info->simd_clone = "x86-64";
    info->blas = "none (every matrix product runs on digitnet's kernels)";
#if defined(__x86_64__) && defined(__GNUC__)
    static const char *const names[] = {"sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                        "avx512vnni", "avx512bf16"};
    __builtin_cpu_init();
    const int have[] = {__builtin_cpu_supports("sse4.2"),   __builtin_cpu_supports("avx"),
                        __builtin_cpu_supports("avx2"),     __builtin_cpu_supports("fma"),
                        __builtin_cpu_supports("avx512f"),  __builtin_cpu_supports("avx512bw"),
                        __builtin_cpu_supports("avx512vl"), __builtin_cpu_supports("avx512vnni"),
                        __builtin_cpu_supports("avx512bf16")};
    size_t used = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (have[i] && used < sizeof info->cpu_features) {
            int n = snprintf(info->cpu_features + used, sizeof info->cpu_features - used, "%s%s", used ? " " : "",
                             names[i]);
            used += n > 0 ? (size_t)n : 0;
        }
    /* The order the loader tries the target_clones variants (internal.h: DN_MULTIVERSION), from
     * the features each level needs (clang's __builtin_cpu_supports does not take level names). */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        info->simd_clone = "x86-64-v4";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        info->simd_clone = "x86-64-v3";
#endif
#ifdef _OPENMP
    info->threads = omp_get_max_threads();
#else
    info->threads = 1;
#endif
    dn_fp_saved fp;
    dn_fp_fast_begin(&fp);
    info->flush_to_zero = dn_fp_fast_active();
    dn_fp_fast_end(&fp);
#ifdef __VERSION__
    info->compiler = "gcc " __VERSION__;
#else
    info->compiler = "unknown";
#endif
    info->build_flags = DN_BUILD_OPT;
}
