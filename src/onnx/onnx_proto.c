/* The protobuf-c code for ONNX's onnx.proto, generated in the build (Makefile: protoc-c on Debian's
 * /usr/include/onnx/onnx.proto into $(BUILD)/gen/onnx/) and compiled here, so that src/onnx/ is the
 * only place that knows it exists. Not committed: it comes from the onnx.proto the machine has. */
#include "onnx.pb-c.c"
