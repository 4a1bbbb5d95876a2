/* Flush-to-zero and denormals-are-zero for the library's compute threads.
 *
 * Training drives some values (Adam's second moments, gradients through saturated sigmoids)
 * below float's smallest normal number, 1.2e-38. x86 cores take a slow microcode path for every
 * such denormal operand or result; on some Intel cores this slowed epochs down by a third as
 * training went on. With FTZ and DAZ set, denormals read and written as zero: a change far below
 * anything that moves a weight, made the same way on every thread, so a seed still gives the same
 * model on any thread count.
 *
 * MXCSR is per thread. The library sets both bits in every thread of its OpenMP team on entry to
 * dn_train, dn_net_predict and dn_net_evaluate and restores each thread's own bits on the way out,
 * so no caller's thread is left changed. */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#define HAVE_MXCSR 1
#define FTZ_DAZ 0x8040u /* MXCSR bit 15 flush-to-zero, bit 6 denormals-are-zero */
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void dn_fp_fast_begin(dn_fp_saved *saved)
{
#ifdef HAVE_MXCSR
#pragma omp parallel
    {
        const int id = thread_id();
        if (id < DN_FP_MAX_THREADS) {
            unsigned int csr = _mm_getcsr();
            saved->csr[id] = csr;
            _mm_setcsr(csr | FTZ_DAZ);
        }
    }
#else
    (void)saved;
#endif
}

void dn_fp_fast_end(const dn_fp_saved *saved)
{
#ifdef HAVE_MXCSR
#pragma omp parallel
    {
        const int id = thread_id();
        if (id < DN_FP_MAX_THREADS)
            _mm_setcsr(saved->csr[id]);
    }
#else
    (void)saved;
#endif
}

void dn_fp_fast_begin_here(dn_fp_saved *saved)
{
#ifdef HAVE_MXCSR
    saved->csr[0] = _mm_getcsr();
    _mm_setcsr(saved->csr[0] | FTZ_DAZ);
#else
    (void)saved;
#endif
}

void dn_fp_fast_end_here(const dn_fp_saved *saved)
{
#ifdef HAVE_MXCSR
    _mm_setcsr(saved->csr[0]);
#else
    (void)saved;
#endif
}

int dn_fp_fast_active(void)
{
#ifdef HAVE_MXCSR
    return (_mm_getcsr() & FTZ_DAZ) == FTZ_DAZ;
#else
    return 0;
#endif
}
