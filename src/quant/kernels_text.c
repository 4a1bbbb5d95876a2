/* The text of src/quant/int8_kernels.h as a string, for the C export: the generated NAME.c carries
 * exactly the kernels the host's --int8 path was compiled from. The assembler includes the file
 * (make builds from the project root, where the path resolves); the Makefile rebuilds every object
 * when a header under src/ changes, this one included. */
#include "quant/quant.h"

__asm__(".pushsection .rodata\n"
        ".globl dn_int8_kernels_text\n"
        ".hidden dn_int8_kernels_text\n"
        "dn_int8_kernels_text:\n"
        ".incbin \"src/quant/int8_kernels.h\"\n"
        ".byte 0\n"
        ".popsection\n");
