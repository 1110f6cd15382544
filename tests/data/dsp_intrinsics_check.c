/* Prints the results of the dsp kernels' instruction wrappers (runtime/kernels/dsp/ea_dsp.h) over
 * overflow and saturation corners and pseudo-random words, one line each. Built twice by
 * tests/test_kernels.py: bare-metal for qemu-m4 (the real SXTB16 / SMLAD / SMLABB / SMLATT / SSAT /
 * SSUB8 + SEL / BFI / SMMLAR instructions, output through semihosting) and for the host (the portable C definitions); the two
 * outputs must be identical. */
#include <stdint.h>

#include "ea_dsp.h"

#ifdef __arm__
static void emit(const char *s) {
    register int r0 __asm("r0") = 0x04; /* SYS_WRITE0 */
    register const char *r1 __asm("r1") = s;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}
#else
#include <stdio.h>
static void emit(const char *s) { fputs(s, stdout); }
#endif

static char *hex(char *p, uint32_t v) {
    for (int i = 7; i >= 0; --i) *p++ = "0123456789abcdef"[(v >> (4 * i)) & 15u];
    *p++ = ' ';
    return p;
}

static void line(char tag, uint32_t a, uint32_t b, uint32_t c, uint32_t r) {
    char buf[48], *p = buf;
    *p++ = 'K', *p++ = tag, *p++ = ' ';
    p = hex(p, a), p = hex(p, b), p = hex(p, c), p = hex(p, r);
    *p++ = '\n', *p = 0;
    emit(buf);
}

int main(void) {
    static const uint32_t corners[] = {0u, 1u, 0x7fu, 0x80u, 0xffu, 0x7f7f7f7fu, 0x80808080u, 0x7fff8000u,
                                       0x80007fffu, 0xffffffffu, 0x80008000u, 0x7fff7fffu, 0x12345678u,
                                       0xfedcba98u, 0x00ff00ffu, 0xff00ff00u};
    static const uint32_t accs[] = {0u, 0x7fffffffu, 0x80000000u, 0xffffffffu, 0x3fff0001u};
    uint32_t words[48];
    const int nc = (int)(sizeof corners / sizeof corners[0]);
    uint32_t s = 12345u;
    for (int i = 0; i < 48; ++i) {
        if (i < nc) {
            words[i] = corners[i];
        } else {
            s = s * 1664525u + 1013904223u;
            words[i] = s;
        }
    }
    for (int i = 0; i < 48; ++i) {
        const uint32_t a = words[i];
        line('x', a, 0, 0, ea_sxtb16(a));
        line('y', a, 0, 0, ea_sxtb16_ror8(a));
        line('s', a, 0, 0, (uint32_t)ea_ssat8((int32_t)a));
        line('t', a >> 20, 0, 0, (uint32_t)ea_ssat8((int32_t)(a >> 20) - 2048)); /* around the bounds */
        for (int j = 0; j < 48; j += 3) {
            const uint32_t b = words[j];
            /* lane-wise clamp (bounds b, b's byte-swapped word and their order as given), byte packing */
            line('c', a, b, words[j + 1], ea_clamp_s8x4(a, b, words[j + 1]));
            line('C', a, words[(j + 5) % 48] & 0x7f7f7f7fu, b | 0x80808080u,
                 ea_clamp_s8x4(a, words[(j + 5) % 48] & 0x7f7f7f7fu, b | 0x80808080u));
            line('p', a, b, words[j + 1], ea_pack_b4((int32_t)a, (int32_t)b, (int32_t)words[j + 1], (int32_t)words[j + 2]));
            for (int k = 0; k < 5; ++k) {
                line('d', a, b, accs[k], ea_smlad(a, b, accs[k]));
                line('b', a, b, accs[k], ea_smlabb(a, b, accs[k]));
                line('T', a, b, accs[k], ea_smlatt(a, b, accs[k]));
                line('m', a, b, accs[k], (uint32_t)ea_smmlar((int32_t)a, (int32_t)b, (int32_t)accs[k]));
            }
        }
    }
    emit("K end\n");
    return 0;
}

#ifdef __arm__
/* Bare-metal start for QEMU mps2-an386: a two-word vector table, then exit through semihosting
 * (SYS_EXIT_EXTENDED with the code), so QEMU quits. */
__attribute__((noreturn)) void reset(void) {
    const uint32_t block[2] = {0x20026u, (uint32_t)main()};
    register int r0 __asm("r0") = 0x20;
    register const void *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}
__attribute__((section(".vectors"), used)) const void *const vectors[2] = {(const void *)0x20010000u, (const void *)reset};
#endif
