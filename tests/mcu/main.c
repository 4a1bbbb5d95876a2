/* The firmware of the Cortex-M test (tests/mcu/run.sh): runs the exported network (digits.h /
 * digits.c) on the embedded test images and prints, through semihosting, one line per image with
 * every int8 logit, for the host to compare with its own --int8 logits, then the instructions per
 * inference measured with SysTick (QEMU run with -icount shift=0: one instruction, one nanosecond
 * of virtual time). */
#include "digits.h"
#include "images.h" /* TEST_IMAGES, TEST_PIXELS, test_rle[], test_labels[] (tests/mcu/make_images.c) */

#include <stdint.h>

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

extern volatile uint32_t systick_wraps;

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_exit(int ok)
{
    semihost(0x18, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20024u)); /* SYS_EXIT: application exit / error */
    for (;;)
        ;
}

static char line[256];
static int line_len;

static void put_text(const char *s)
{
    while (*s && line_len < (int)sizeof line - 1)
        line[line_len++] = *s++;
}

static void put_int(long long v)
{
    char digits[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        put_text("-");
    while (n)
        line[line_len < (int)sizeof line - 1 ? line_len++ : line_len] = digits[--n];
}

static void flush_line(void)
{
    line[line_len++] = '\n';
    line[line_len] = '\0';
    semihost(0x04, line); /* SYS_WRITE0 */
    line_len = 0;
}

/* SysTick ticks since start: 24-bit down-counter plus the wraps its interrupt counted. */
static uint64_t ticks(void)
{
    uint32_t wraps, value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return (uint64_t)wraps * 0x1000000u + (0xFFFFFFu - value);
}

/* 2 n instructions: subs + bne per round. */
static void spin(uint32_t n)
{
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n));
}

/* Images are stored as runs: a count of zero pixels, a count of literal pixels, the literals. */
static const uint8_t *unpack(const uint8_t *rle, uint8_t *pixels)
{
    int at = 0;
    while (at < TEST_PIXELS) {
        int zeros = *rle++, literals = *rle++;
        while (zeros--)
            pixels[at++] = 0;
        while (literals--)
            pixels[at++] = *rle++;
    }
    return rle;
}

int main(void)
{
    static uint8_t pixels[TEST_PIXELS];
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7; /* processor clock, interrupt on wrap, enabled */
    spin(1000);   /* the counter reads 0 until its first reload */
    const uint32_t rounds = 1000000;
    uint64_t t0 = ticks();
    spin(rounds);
    const uint64_t spin_ticks = ticks() - t0;
    if (spin_ticks == 0) {
        put_text("SysTick does not advance");
        flush_line();
        return 1;
    }
    uint64_t predict_ticks = 0;
    int correct = 0;
    const uint8_t *rle = test_rle;
    for (int i = 0; i < TEST_IMAGES; i++) {
        int8_t logits[digits_CLASSES];
        rle = unpack(rle, pixels);
        t0 = ticks();
        int c = digits_predict(pixels, logits);
        predict_ticks += ticks() - t0;
        correct += c == test_labels[i];
        put_text("img ");
        put_int(i);
        put_text(" ");
        put_int(c);
        for (int k = 0; k < digits_CLASSES; k++) {
            put_text(" ");
            put_int(logits[k]);
        }
        flush_line();
    }
    /* instructions = ticks x (2 rounds / spin_ticks) */
    put_text("instructions per inference: ");
    put_int((long long)((predict_ticks * 2u * rounds + spin_ticks * TEST_IMAGES / 2) / (spin_ticks * TEST_IMAGES)));
    put_text(" (SysTick: ");
    put_int((long long)spin_ticks);
    put_text(" ticks per 2000000 instructions)");
    flush_line();
    put_text("correct: ");
    put_int(correct);
    put_text(" of ");
    put_int(TEST_IMAGES);
    flush_line();
    return 0;
}
