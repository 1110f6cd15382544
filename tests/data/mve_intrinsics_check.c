/* Prints the results of the MVE intrinsics the mve kernels use (runtime/kernels/mve/ea_mve.h) over
 * saturation, rounding and wrap-around corners and pseudo-random lanes, one line each. Built twice by
 * tests/test_kernels_mve.py: bare-metal for qemu-m55 (arm_mve.h: the real VMLADAVA / VQRDMULH /
 * VRSHL / VQADD / VCTP / predicated loads and stores, output through semihosting) and for the host
 * (the portable C definitions); the two outputs must be identical. Also prints the vector
 * requantization (ea_mve_rq.h) against the scalar ea_rq_out on the same corners. */
#include <stdint.h>

#include "ea_mve.h"
#include "ea_mve_rq.h"

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

/* tag, then up to 6 words */
static void line(char tag, int n, const uint32_t *w) {
    char buf[80], *p = buf;
    *p++ = 'M', *p++ = tag, *p++ = ' ';
    for (int i = 0; i < n; ++i) p = hex(p, w[i]);
    *p++ = '\n', *p = 0;
    emit(buf);
}

static void line_v(char tag, uint32_t a, uint32_t b, int32x4_t v) {
    const uint32_t w[6] = {a, b, (uint32_t)vgetq_lane_s32(v, 0), (uint32_t)vgetq_lane_s32(v, 1),
                           (uint32_t)vgetq_lane_s32(v, 2), (uint32_t)vgetq_lane_s32(v, 3)};
    line(tag, 6, w);
}

static uint32_t s = 12345u;
static uint32_t rnd(void) {
    s = s * 1664525u + 1013904223u;
    return s;
}

static const int32_t corners[] = {0, 1, -1, 2, -2, 127, -128, 128, -129, 0x3fffffff, 0x40000000, -0x40000000,
                                  0x7fffffff, INT32_MIN, INT32_MIN + 1, 0x7ffffffe, 0x12345678, -0x12345678,
                                  0x00010000, -0x00010000, 0x40, -0x40, 0x41, -0x41, 0x3f, -0x3f};
#define NC ((int)(sizeof corners / sizeof corners[0]))

static int32_t neg(int32_t x) { return (int32_t)(0u - (uint32_t)x); } /* wraps at INT32_MIN */
static int32_t word(int i) { return i < NC ? corners[i] : (int32_t)rnd(); }

int main(void) {
    int8_t a8[48], b8[48], st[36];
    /* VMLADAVA.S8 and the predicated byte loads: extremes (-128 x -128 = 2^14 sixteen times) and wraps */
    for (int t = 0; t < 200; ++t) {
        for (int i = 0; i < 48; ++i) {
            const uint32_t r = rnd();
            a8[i] = (int8_t)(uint8_t)(t < 3 ? (t == 0 ? 0x80 : (t == 1 ? 0x7f : (i & 1 ? 0x80 : 0x7f))) : (r & 0xffu));
            b8[i] = (int8_t)(uint8_t)(t < 3 ? (t == 2 ? 0x7f : 0x80) : ((r >> 8) & 0xffu));
        }
        const int32_t acc = word(t % (NC + 8));
        for (uint32_t n = 0; n <= 17; n += (t < 10 ? 1u : 5u)) {
            const mve_pred16_t p = vctp8q(n);
            const int32_t r1 = vmladavaq_s8(acc, vldrbq_z_s8(a8 + 1, p), vldrbq_z_s8(b8 + 3, p));
            const int32_t r2 = vmladavaq_s8(acc, vldrbq_s8(a8 + 5), vldrbq_s8(b8 + 7));
            for (int i = 0; i < 36; ++i) st[i] = 0x55;
            vstrbq_p_s8(st + 1, vldrbq_s8(a8 + n), p);
            vstrbq_s8(st + 17, vldrbq_z_s8(b8, p));
            const mve_pred16_t p32 = vctp32q(n);
            vstrbq_p_s32(st + 9, vldrbq_s32(a8 + n), p32);
            vstrbq_s32(st + 5, vldrbq_z_s32(b8 + n, p32));
            vstrbq_p_s8(st + 20, vdupq_n_s8(a8[n]), p);
            const int32_t words4[4] = {r1, r2, acc, (int32_t)n};
            vstrbq_s32(st + 32, vshrq_n_s32(vldrwq_z_s32(words4, p32), 8));
            uint32_t w[6] = {(uint32_t)acc, n, (uint32_t)r1, (uint32_t)r2, p, p32};
            line('d', 6, w);
            for (int i = 0; i < 36; i += 4) { /* the stores' bytes, untouched ones included */
                w[i / 4 % 3] = (uint32_t)(uint8_t)st[i] | ((uint32_t)(uint8_t)st[i + 1] << 8) |
                               ((uint32_t)(uint8_t)st[i + 2] << 16) | ((uint32_t)(uint8_t)st[i + 3] << 24);
                if (i / 4 % 3 == 2) line('s', 3, w);
            }
        }
    }
    /* lane-wise word operations on corners: every pair of corner words, then random ones */
    for (int i = 0; i < NC + 40; ++i) {
        for (int j = 0; j < NC + 40; j += (i < NC ? 1 : 7)) {
            const int32_t x = word(i), y = word(j);
            const int32x4_t a = ea_mve_vec4(x, (int32_t)rnd(), y, neg(x)), b = ea_mve_vec4(y, x, (int32_t)rnd(), y);
            line_v('q', (uint32_t)x, (uint32_t)y, vqrdmulhq_s32(a, b));
            line_v('a', (uint32_t)x, (uint32_t)y, vqaddq_s32(a, b));
            line_v('+', (uint32_t)x, (uint32_t)y, vaddq_n_s32(vaddq_s32(a, b), x));
            line_v('&', (uint32_t)x, (uint32_t)y, vandq_s32(a, b));
            line_v('*', (uint32_t)x, (uint32_t)y, vmulq_s32(a, b));
            line_v('m', (uint32_t)x, (uint32_t)y, vmaxq_s32(a, b));
            line_v('n', (uint32_t)x, (uint32_t)y, vminq_s32(a, b));
            line_v('r', (uint32_t)x, (uint32_t)y, vshrq_n_s32(a, 31));
        }
        /* shifts by every amount from -40 to 40 (the kernels use -31..31) */
        for (int32_t sh = -40; sh <= 40; ++sh) {
            const int32_t x = word(i);
            const int32x4_t a = ea_mve_vec4(x, (int32_t)rnd(), neg(x), x ^ 0x55);
            const int32x4_t b = ea_mve_vec4(sh, sh, sh, sh + 256); /* only the low byte counts */
            line_v('l', (uint32_t)x, (uint32_t)sh, vshlq_s32(a, b));
            line_v('R', (uint32_t)x, (uint32_t)sh, vrshlq_s32(a, b));
        }
    }
    /* the vector requantization against the scalar one (ea_rq_out), per-channel, shifts -31..30 */
    for (int i = 0; i < 3000; ++i) {
        int32_t mult[4], shift[4], bias[4] = {0, 0, 0, 0};
        for (int k = 0; k < 4; ++k) {
            const uint32_t r = rnd();
            mult[k] = i < 64 ? (k & 1 ? 0x7fffffff : 0x40000000) : (int32_t)(0x40000000u | (r & 0x3fffffffu));
            shift[k] = i < 64 ? (i % 62) - 31 : (int32_t)(rnd() % 40u) - 31;
        }
        /* one rnd() per statement: the order of evaluation within an expression is the compiler's */
        const int32_t out_offset = (int32_t)(rnd() % 256u) - 128;
        const ea_requant q = {bias, mult, shift, 1, out_offset, -128 + (i % 3), 127 - (i % 5)};
        const int32_t a0 = word(i % (NC + 20)), a2 = neg(a0);
        int32_t a1 = (int32_t)rnd();
        a1 >>= rnd() % 31u;
        const int32_t a3 = (int32_t)rnd();
        int8_t out[4];
        const ea_rqv c = ea_rqv_of(&q, 0);
        vstrbq_s32(out, ea_rqv_apply(&c, &q, ea_mve_vec4(a0, a1, a2, a3)));
        const int32_t accs[4] = {a0, a1, a2, a3};
        uint32_t w[6] = {(uint32_t)a0, (uint32_t)a1, (uint32_t)a2, (uint32_t)a3, 0, 0};
        for (int k = 0; k < 4; ++k) {
            const ea_rq cs = ea_rq_of(&q, k);
            const int8_t ref = ea_rq_out(&cs, &q, (uint32_t)accs[k]);
            w[4] |= (uint32_t)(uint8_t)out[k] << (8 * k);
            w[5] |= (uint32_t)(uint8_t)ref << (8 * k);
        }
        line(w[4] == w[5] ? 'Q' : 'X', 6, w);
    }
    emit("M end\n");
    return 0;
}

#ifdef __arm__
/* Bare-metal start for QEMU mps3-an547: grant CP10/CP11 (MVE shares the FP registers), then exit through
 * semihosting (SYS_EXIT_EXTENDED with main's code), so QEMU quits. */
__attribute__((naked, noreturn)) void reset(void) {
    __asm volatile("ldr r0, =0xE000ED88\n ldr r1, [r0]\n orr r1, r1, #(0xF << 20)\n str r1, [r0]\n dsb\n isb\n"
                   "b start\n");
}
__attribute__((noreturn, used)) void start(void) {
    const uint32_t block[2] = {0x20026u, (uint32_t)main()};
    register int r0 __asm("r0") = 0x20;
    register const void *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}
__attribute__((section(".vectors"), used)) const void *const vectors[2] = {(const void *)0x20010000u, (const void *)reset};
#endif
