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
/* SMMLAR: the high word of (ra << 32) + a * b + 2^31 (64-bit, modulo 2^64). */
static inline int32_t ea_smmlar(int32_t a, int32_t b, int32_t ra) {
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(ra));
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
static inline int32_t ea_smmlar(int32_t a, int32_t b, int32_t ra) {
    const uint64_t v = ((uint64_t)(uint32_t)ra << 32) + (uint64_t)((int64_t)a * (int64_t)b) + 0x80000000u;
    return (int32_t)(uint32_t)(v >> 32);
}
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

/* Requantization shared by the dsp kernels, with each channel's constants in a table built once per call
 * (ea_rq_table). ea_rqr's form (ea_quant.h) for a right shift r >= 1 is floor(S / 2^(31+r)) with
 * S = acc * mult + 2^30 + 2^(30+r) - 2^31 [acc < 0]. Doubled, 2S = 2acc * mult + 2^31 + 2^(31+r) - 2^32 [acc < 0],
 * which is SMMLAR's (ra << 32) + a * b + 2^31 with a = 2acc, b = mult, ra = 2^(r-1) - [acc < 0]; its high
 * word shifted right by r is the result. The output offset rides in ra as well: adding off * 2^r there
 * adds exactly off after the shift. So one output is LSL, ADD (ra = k + (acc >> 31)), SMMLAR, ASR.
 *
 * Exact while nothing overflows: 2acc must fit (|acc| < 2^30, which ea_rq_table checks from each
 * channel's folded bias and depth: |acc| <= |bias| + depth * 2^14, int8 x int8 products), and for
 * r <= 22, |k| < 2^30 keeps the 64-bit sum below 2^63 and its high word within int32. ea_rq_table returns
 * 0 when a channel has another shift (an effective scale >= 1/2, or below about 2^-53) or a larger
 * bias, and the kernel then takes a path through ea_requant_s8. */
#include "ea_kernels.h"

#define EA_RQ_MAX_R 22

typedef struct {
    int32_t k, mult; /* 2^(r-1) + out_offset * 2^r, and the multiplier: loaded as one LDRD */
    int32_t r, pad;
} ea_rq_entry;

static inline int ea_rq_table(const ea_requant *q, int32_t rows, int32_t depth, ea_rq_entry *t) {
    for (int32_t ch = 0; ch < rows; ++ch) {
        const int32_t i = q->per_channel ? ch : 0, r = -q->shift[i];
        const int64_t b = q->bias[ch];
        if (r < 1 || r > EA_RQ_MAX_R || (b < 0 ? -b : b) + (int64_t)depth * (1 << 14) >= ((int64_t)1 << 30)) return 0;
        t[ch].k = (int32_t)((1 << (r - 1)) + q->out_offset * (1 << r));
        t[ch].mult = q->mult[i];
        t[ch].r = r;
        t[ch].pad = 0;
    }
    return 1;
}

/* The requantized value + out_offset, before the activation clamp. */
static inline int32_t ea_rq_entry_z(const ea_rq_entry *e, uint32_t acc) {
    return ea_smmlar((int32_t)(acc << 1), e->mult, e->k + ((int32_t)acc >> 31)) >> e->r;
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
