/* libFuzzer entry point for the optdigits target; the body is dn_fuzz_optdigits in targets.c. */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_fuzz_optdigits(data, size);
    return 0;
}
