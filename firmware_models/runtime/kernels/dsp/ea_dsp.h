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
/* Per byte lane (signed): max(v, lo) then min(that, hi), by SSUB8 (its GE flags) and SEL twice. One asm
 * block: the GE flags must pass from each SSUB8 to its SEL untouched. */
static inline uint32_t ea_clamp_s8x4(uint32_t v, uint32_t lo, uint32_t hi) {
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\tsel %0, %2, %3\n\tssub8 %1, %4, %0\n\tsel %0, %0, %4"
            : "=&r"(r), "=&r"(t)
            : "r"(v), "r"(lo), "r"(hi)
            : "cc");
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
static inline uint32_t ea_clamp_s8x4(uint32_t v, uint32_t lo, uint32_t hi) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int32_t x = (int8_t)(uint8_t)(v >> i), l = (int8_t)(uint8_t)(lo >> i), h = (int8_t)(uint8_t)(hi >> i);
        const int32_t m = x >= l ? x : l;
        r |= (uint32_t)(uint8_t)(m <= h ? m : h) << i;
    }
    return r;
}

#endif

/* The low bytes of four words as one word (byte i from z<i>): three BFI (GCC, left to itself, masks and
 * shifts each byte). */
#if defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 2
static inline uint32_t ea_pack_b4(int32_t z0, int32_t z1, int32_t z2, int32_t z3) {
    uint32_t r = (uint32_t)z0;
    __asm__("bfi %0, %1, #8, #8\n\tbfi %0, %2, #16, #8\n\tbfi %0, %3, #24, #8" : "+r"(r) : "r"(z1), "r"(z2), "r"(z3));
    return r;
}
#else
static inline uint32_t ea_pack_b4(int32_t z0, int32_t z1, int32_t z2, int32_t z3) {
    return ((uint32_t)z0 & 0xffu) | ((uint32_t)z1 & 0xffu) << 8 | ((uint32_t)z2 & 0xffu) << 16 | (uint32_t)z3 << 24;
}
#endif

/* A byte repeated in the four lanes (the activation bounds for ea_clamp_s8x4). */
static inline uint32_t ea_splat_b4(int32_t x) { return (uint32_t)(uint8_t)x * 0x01010101u; }

/* Requantization shared by the dsp kernels: ea_rqr's form (ea_quant.h) with each channel's constants in
 * a table built once per call (ea_rq_table): acc * mult + 2^30 + 2^(30+r), less 2^31 for a negative
 * acc, as one 64-bit multiply-add (SMLAL), then the high word shifted right by r - 1 (sh).
 *
 * The output offset rides in the same constant: adding off * 2^(32+sh) adds exactly off * 2^sh to the
 * high word and off after the shift. That holds while nothing overflows: |acc * mult| < 2^62, the
 * rounding terms < 2^61 and |off| <= 128, so for sh <= 22 the sum stays below 2^63 and the high word
 * below 2^31 (1.5 * 2^30 + 2^29). ea_rq_table returns 0 when a channel's shift is not a right shift of
 * 1..23 (an effective scale >= 1/2 or below about 2^-54), and the kernel then takes a path through
 * ea_requant_s8. */
#include "ea_kernels.h"

#define EA_RQ_MAX_SH 22

typedef struct {
    int64_t c; /* 2^30 + 2^(30+r) + off * 2^(32+sh): loaded as one LDRD */
    int32_t mult, sh;
} ea_rq_entry;

static inline int ea_rq_table(const ea_requant *q, int32_t rows, ea_rq_entry *t) {
    for (int32_t r = 0; r < rows; ++r) {
        const int32_t i = q->per_channel ? r : 0, shift = q->shift[i];
        if (shift > -1 || -shift - 1 > EA_RQ_MAX_SH) return 0;
        const int32_t rr = -shift, sh = rr - 1;
        t[r].c = ((int64_t)1 << 30) + ((int64_t)1 << (30 + rr)) + (int64_t)q->out_offset * ((int64_t)1 << (32 + sh));
        t[r].mult = q->mult[i];
        t[r].sh = sh;
    }
    return 1;
}

/* The requantized value + out_offset, before the activation clamp. */
static inline int32_t ea_rq_entry_z(const ea_rq_entry *e, uint32_t acc) {
    const int64_t c = e->c - (int64_t)(acc & 0x80000000u);
    const int64_t s = (int64_t)(int32_t)acc * e->mult + c;
    return (int32_t)(s >> 32) >> e->sh;
}

static inline int8_t ea_rq_entry_out(const ea_rq_entry *e, uint32_t acc, int32_t lo, int32_t hi) {
    return (int8_t)ea_clamp(ea_rq_entry_z(e, acc), lo, hi);
}

/* Four outputs as one word (byte i from a<i> with constants e<i>): each saturated to int8 by SSAT,
 * packed, then clamped to the activation range lane by lane (lo4, hi4: ea_splat_b4 of act_min, act_max;
 * inside [-128, 127], so saturating first changes nothing): the same bytes as ea_rq_entry_out. */
static inline uint32_t ea_rq_out4(const ea_rq_entry *e0, const ea_rq_entry *e1, const ea_rq_entry *e2,
                                  const ea_rq_entry *e3, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                  uint32_t lo4, uint32_t hi4) {
    const uint32_t v = ea_pack_b4(ea_ssat8(ea_rq_entry_z(e0, a0)), ea_ssat8(ea_rq_entry_z(e1, a1)),
                                  ea_ssat8(ea_rq_entry_z(e2, a2)), ea_ssat8(ea_rq_entry_z(e3, a3)));
    return ea_clamp_s8x4(v, lo4, hi4);
}

#endif /* EA_DSP_H */
