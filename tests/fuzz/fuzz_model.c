/* libFuzzer entry point for the model target; the body is dn_fuzz_model in targets.c. */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_fuzz_model(data, size);
    return 0;
}
