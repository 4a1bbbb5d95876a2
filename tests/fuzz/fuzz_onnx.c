/* libFuzzer entry point for the ONNX import target; the body is dn_fuzz_onnx in targets.c. */
#include "targets.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_fuzz_onnx(data, size);
    return 0;
}
