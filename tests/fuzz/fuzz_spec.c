/* libFuzzer entry point for the spec target; the body is dn_fuzz_spec in targets.c. */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_fuzz_spec(data, size);
    return 0;
}
