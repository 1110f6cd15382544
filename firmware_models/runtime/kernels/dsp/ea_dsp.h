/* The Arm v7E-M DSP instructions the dsp kernels use, as inline functions: the instruction itself where
 * the compiler targets a core that has it (__ARM_FEATURE_DSP), else a portable C definition with the
 * same result (the Arm ARM's pseudo-code: products and sums exact, then the low 32 bits), so the host
 * build runs the variant's C code against TFLM. tests/test_kernels_dsp.py checks the portable
 * definitions against the real instructions on qemu-m4, overflow and saturation corners included.
 * The Q (sticky overflow) flag is not modelled: no kernel reads it. */
#ifndef EA_DSP_H
#define EA_DSP_H

#include <stdint.h>
#include <string.h>

/* Four int8 from possibly unaligned memory as one word (LDR: Cortex-M4 allows unaligned word loads). */
static inline uint32_t ea_read_s8x4(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

/* SXTB16: bytes 0 and 2 sign-extended into the two halfwords. */
static inline uint32_t ea_sxtb16(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}
/* SXTB16 ROR #8: bytes 1 and 3 sign-extended into the two halfwords. */
static inline uint32_t ea_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* SMLAD: acc + lo(a) * lo(b) + hi(a) * hi(b), halfwords signed, modulo 2^32. */
static inline uint32_t ea_smlad(uint32_t a, uint32_t b, uint32_t acc) {
    uint32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* SMLABB / SMLATT: acc + the bottom (top) signed halfwords' product, modulo 2^32. */
static inline uint32_t ea_smlabb(uint32_t a, uint32_t b, uint32_t acc) {
    uint32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline uint32_t ea_smlatt(uint32_t a, uint32_t b, uint32_t acc) {
    uint32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* SSAT #8: x saturated to [-128, 127]. */
static inline int32_t ea_ssat8(int32_t x) {
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x));
    return r;
}

#else /* portable definitions */

static inline int32_t ea_lo16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x & 0xffffu); }
static inline int32_t ea_hi16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x >> 16); }
static inline uint32_t ea_sxtb16(uint32_t x) {
    const uint32_t lo = (uint32_t)(int32_t)(int8_t)(uint8_t)(x & 0xffu) & 0xffffu;
    const uint32_t hi = (uint32_t)(int32_t)(int8_t)(uint8_t)((x >> 16) & 0xffu) & 0xffffu;
    return lo | (hi << 16);
}
static inline uint32_t ea_sxtb16_ror8(uint32_t x) { return ea_sxtb16((x >> 8) | (x << 24)); }
static inline uint32_t ea_smlad(uint32_t a, uint32_t b, uint32_t acc) {
    /* Each product fits in int32 except (-32768)^2 = 2^30, which does too; their sum may not: add
     * them modulo 2^32, as the instruction's result register does. */
    return acc + (uint32_t)(ea_lo16(a) * ea_lo16(b)) + (uint32_t)(ea_hi16(a) * ea_hi16(b));
}
static inline uint32_t ea_smlabb(uint32_t a, uint32_t b, uint32_t acc) {
    return acc + (uint32_t)(ea_lo16(a) * ea_lo16(b));
}
static inline uint32_t ea_smlatt(uint32_t a, uint32_t b, uint32_t acc) {
    return acc + (uint32_t)(ea_hi16(a) * ea_hi16(b));
}
static inline int32_t ea_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }

#endif

/* Requantization shared by the dsp kernels: ea_rqr's form (ea_quant.h) with each channel's constants in
 * a table built once per call (ea_rq_table): acc * mult + 2^30 + 2^(30+r), less 2^31 for a negative
 * acc, as one 64-bit multiply-add (SMLAL), then the high word shifted right by r - 1. Valid for right
 * shifts r >= 1 only: ea_rq_table returns 0 when a channel has another shift (an effective scale >= 1/2),
 * and the kernel then takes a path through ea_requant_s8. */
#include "ea_kernels.h"

typedef struct {
    int32_t mult;
    uint32_t c_lo;
    int32_t c_hi, sh;
} ea_rq_entry;

/* 0 when some channel's shift is not a right shift of at least 1. */
static inline int ea_rq_table(const ea_requant *q, int32_t rows, ea_rq_entry *t) {
    for (int32_t r = 0; r < rows; ++r) {
        const int32_t i = q->per_channel ? r : 0, shift = q->shift[i];
        if (shift > -1) return 0;
        const int32_t rr = -shift; /* 1..31 */
        t[r].mult = q->mult[i];
        t[r].c_lo = rr == 1 ? 0xC0000000u : 0x40000000u; /* 2^30 + 2^(30+r): its low and high words */
        t[r].c_hi = rr >= 2 ? (int32_t)(1u << (rr - 2)) : 0;
        t[r].sh = rr - 1;
    }
    return 1;
}

static inline int8_t ea_rq_entry_out(const ea_rq_entry *e, uint32_t acc, int32_t off, int32_t lo, int32_t hi) {
    const int64_t c = (int64_t)(((uint64_t)(uint32_t)e->c_hi << 32) | e->c_lo) - (int64_t)(acc & 0x80000000u);
    const int64_t s = (int64_t)(int32_t)acc * e->mult + c;
    const int32_t z = ea_wrap_add((int32_t)(s >> 32) >> e->sh, off);
    return (int8_t)ea_clamp(z, lo, hi);
}

#endif /* EA_DSP_H */
