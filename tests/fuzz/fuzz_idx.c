/* libFuzzer entry point for the idx target; the body is dn_fuzz_idx in targets.c. */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_fuzz_idx(data, size);
    return 0;
}
