/* The bodies of the fuzz harnesses, shared by the libFuzzer entry points (tests/fuzz/fuzz_*.c,
 * `make fuzz`) and the regression suite (tests/test_fuzz_regressions.c, `make test`). Each takes
 * the raw fuzz input, runs it through the library exactly as digitnet would meet such bytes, checks
 * the invariants of whatever comes back, and returns the loader's status. A broken invariant
 * (a failure without a message, a message over several lines, a loaded data set with a label of 12,
 * a network whose canonical spec does not parse back to itself...) prints what went wrong and
 * aborts, which both libFuzzer and cmocka report as a crash. */
#ifndef DN_FUZZ_TARGETS_H
#define DN_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#include "digitnet.h"

/* The input is [u16 little-endian L][L bytes: the IDX labels file][the rest: the IDX images file]
 * (either file raw or gzip); both go to dn_idx_load. */
dn_status dn_fuzz_idx(const uint8_t *data, size_t size);

/* The input is an optdigits file (.tra/.tes or data.csv) for dn_optdigits_load. */
dn_status dn_fuzz_optdigits(const uint8_t *data, size_t size);

/* The input is spec text for dn_net_parse (cut at the first NUL byte). A spec that parses must
 * print a canonical spec that parses to the same network; a small one also runs one prediction. */
dn_status dn_fuzz_spec(const uint8_t *data, size_t size);

/* The input is a safetensors model file for dn_model_load, then dn_checkpoint_load. Returns the
 * status of dn_model_load, or for a checkpoint whose model part loads, that of dn_checkpoint_load.
 * A loaded model that is small runs one prediction. */
dn_status dn_fuzz_model(const uint8_t *data, size_t size);

/* The input is an image file for dn_image_decode (with the limit `digitnet serve` uses); a decoded
 * image goes through dn_preprocess for both input shapes, and a small one through a PNG round trip. */
dn_status dn_fuzz_image(const uint8_t *data, size_t size);

/* The input is an ONNX model for dn_onnx_import_bytes (src/onnx/); an imported network must pass the
 * checks of a loaded model file, and a small one runs one prediction. */
dn_status dn_fuzz_onnx(const uint8_t *data, size_t size);

/* The decode limit the image target uses: the one `digitnet serve` passes for uploads. */
#define DN_FUZZ_IMAGE_MAX_PIXELS (4096u * 4096u)

#endif
