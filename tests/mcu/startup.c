/* Minimal Cortex-M startup for the QEMU test boards: the vector table, a reset handler that copies
 * .data from flash and clears .bss, and SysTick counting its wraps (QEMU models no cycle counter;
 * with -icount shift=0 SysTick advances with the instructions executed). */
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void semihost_exit(int ok);

volatile uint32_t systick_wraps;

void reset_handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end)
        *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    semihost_exit(main() == 0);
}

static void fault_handler(void)
{
    semihost_exit(0);
}

static void systick_handler(void)
{
    systick_wraps++;
}

/* Initial stack pointer, then the handlers: reset, NMI, hard fault, ..., SysTick (entry 15). */
__attribute__((section(".vectors"), used)) void (*const vector_table[16])(void) = {
    (void (*)(void))&__stack_top, reset_handler, fault_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler, systick_handler,
};
