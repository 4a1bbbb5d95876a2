/* libFuzzer entry point for the image target; the body is dn_fuzz_image in targets.c. */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_fuzz_image(data, size);
    return 0;
}
