/* The MVE (Helium) intrinsics the mve kernels use. On a core with MVE (__ARM_FEATURE_MVE) these are
 * ACLE's own, from <arm_mve.h>; anywhere else (the host build) this header defines the same names with
 * portable C that follows the Armv8.1-M pseudo-code (lanes wrap modulo 2^n, saturation and rounding as
 * the instruction does), so the host fidelity suite runs the mve set's C code against TFLM.
 * tests/test_kernels_mve.py checks these definitions against the real instructions on qemu-m55,
 * saturation and rounding corners included. Only what the kernels use is defined. */
#ifndef EA_MVE_H
#define EA_MVE_H

#include <stdint.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)

#include <arm_mve.h>

#else /* portable definitions */

typedef struct { int8_t v[16]; } int8x16_t;
typedef struct { int16_t v[8]; } int16x8_t;
typedef struct { int32_t v[4]; } int32x4_t;
typedef uint16_t mve_pred16_t; /* one bit per byte of the vector, as VPR.P0 */

/* VCTP.8 / VCTP.32: the first n lanes active. */
static inline mve_pred16_t vctp8q(uint32_t n) { return (mve_pred16_t)(n >= 16 ? 0xffffu : (1u << n) - 1u); }
static inline mve_pred16_t vctp32q(uint32_t n) { return (mve_pred16_t)(n >= 4 ? 0xffffu : (1u << (4u * n)) - 1u); }

/* VLDRB.8 / VSTRB.8; the _z / _p forms neither read nor write inactive lanes (_z loads them as 0). */
static inline int8x16_t vldrbq_s8(const int8_t *p) {
    int8x16_t r;
    for (int i = 0; i < 16; ++i) r.v[i] = p[i];
    return r;
}
static inline int8x16_t vldrbq_z_s8(const int8_t *p, mve_pred16_t m) {
    int8x16_t r;
    for (int i = 0; i < 16; ++i) r.v[i] = (m >> i) & 1u ? p[i] : 0;
    return r;
}
static inline void vstrbq_s8(int8_t *p, int8x16_t v) {
    for (int i = 0; i < 16; ++i) p[i] = v.v[i];
}
static inline void vstrbq_p_s8(int8_t *p, int8x16_t v, mve_pred16_t m) {
    for (int i = 0; i < 16; ++i)
        if ((m >> i) & 1u) p[i] = v.v[i];
}
/* VLDRB.S32: four bytes sign-extended to words. VSTRB.32: the low byte of each word. */
static inline int32x4_t vldrbq_s32(const int8_t *p) {
    int32x4_t r;
    for (int i = 0; i < 4; ++i) r.v[i] = p[i];
    return r;
}
static inline int32x4_t vldrbq_z_s32(const int8_t *p, mve_pred16_t m) {
    int32x4_t r;
    for (int i = 0; i < 4; ++i) r.v[i] = (m >> (4 * i)) & 1u ? p[i] : 0;
    return r;
}
static inline void vstrbq_s32(int8_t *p, int32x4_t v) {
    for (int i = 0; i < 4; ++i) p[i] = (int8_t)(uint8_t)((uint32_t)v.v[i] & 0xffu);
}
static inline void vstrbq_p_s32(int8_t *p, int32x4_t v, mve_pred16_t m) {
    for (int i = 0; i < 4; ++i)
        if ((m >> (4 * i)) & 1u) p[i] = (int8_t)(uint8_t)((uint32_t)v.v[i] & 0xffu);
}
static inline int32x4_t vldrwq_s32(const int32_t *p) {
    int32x4_t r;
    for (int i = 0; i < 4; ++i) r.v[i] = p[i];
    return r;
}
static inline int8x16_t vdupq_n_s8(int8_t a) {
    int8x16_t r;
    for (int i = 0; i < 16; ++i) r.v[i] = a;
    return r;
}
static inline int32x4_t vldrwq_z_s32(const int32_t *p, mve_pred16_t m) {
    int32x4_t r;
    for (int i = 0; i < 4; ++i) r.v[i] = (m >> (4 * i)) & 1u ? p[i] : 0;
    return r;
}
static inline int32x4_t vdupq_n_s32(int32_t a) {
    const int32x4_t r = {{a, a, a, a}};
    return r;
}
static inline int32x4_t vsetq_lane_s32(int32_t a, int32x4_t v, int lane) {
    v.v[lane & 3] = a;
    return v;
}
static inline int32_t vgetq_lane_s32(int32x4_t v, int lane) { return v.v[lane & 3]; }

/* VMLADAVA.S8: acc + the sum of the 16 lane products, modulo 2^32 (the result is 32 bits). */
static inline int32_t vmladavaq_s8(int32_t acc, int8x16_t a, int8x16_t b) {
    uint32_t s = (uint32_t)acc;
    for (int i = 0; i < 16; ++i) s += (uint32_t)((int32_t)a.v[i] * (int32_t)b.v[i]);
    return (int32_t)s;
}

/* Lane-wise word arithmetic: VADD, VAND, VMAX, VMIN, VQADD (saturating). */
static inline int32x4_t vaddq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = (int32_t)((uint32_t)a.v[i] + (uint32_t)b.v[i]);
    return a;
}
/* VMUL.I32: the low 32 bits of each lane's product. */
static inline int32x4_t vmulq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = (int32_t)((uint32_t)a.v[i] * (uint32_t)b.v[i]);
    return a;
}
static inline int32x4_t vaddq_n_s32(int32x4_t a, int32_t b) { return vaddq_s32(a, vdupq_n_s32(b)); }
static inline int32x4_t vandq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = (int32_t)((uint32_t)a.v[i] & (uint32_t)b.v[i]);
    return a;
}
static inline int32x4_t vmaxq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
    return a;
}
static inline int32x4_t vminq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
    return a;
}
static inline int32_t ea_mve_sat32(int64_t x) {
    return x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : (int32_t)x);
}
static inline int32x4_t vqaddq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = ea_mve_sat32((int64_t)a.v[i] + b.v[i]);
    return a;
}
/* VSHR.S32 #n (1..32): arithmetic right shift. */
static inline int32x4_t vshrq_n_s32(int32x4_t a, int n) {
    for (int i = 0; i < 4; ++i) a.v[i] = (int32_t)((int64_t)a.v[i] >> n);
    return a;
}
/* VSHL.S32 / VRSHL.S32 (register): shift each lane by the signed low byte of the other; a negative
 * shift goes right (VRSHL rounds it: adds 2^(n-1) first, in full precision), the result keeps the low
 * 32 bits. */
static inline int32_t ea_mve_shl(int32_t x, int32_t sh, int rounding) {
    const int32_t s = (int8_t)(uint8_t)((uint32_t)sh & 0xffu);
    if (s >= 0) return s >= 32 ? 0 : (int32_t)((uint32_t)x << s);
    const int n = -s > 63 ? 63 : -s;
    const int64_t round = rounding ? ((int64_t)1 << (n - 1)) : 0;
    return (int32_t)(((int64_t)x + round) >> n);
}
static inline int32x4_t vshlq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = ea_mve_shl(a.v[i], b.v[i], 0);
    return a;
}
static inline int32x4_t vrshlq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i) a.v[i] = ea_mve_shl(a.v[i], b.v[i], 1);
    return a;
}
/* VQRDMULH.S32: (2ab + 2^31) >> 32, saturated (only INT32_MIN x INT32_MIN overflows). */
static inline int32x4_t vqrdmulhq_s32(int32x4_t a, int32x4_t b) {
    for (int i = 0; i < 4; ++i)
        a.v[i] = ea_mve_sat32(((int64_t)a.v[i] * b.v[i] + ((int64_t)1 << 30)) >> 31);
    return a;
}

#endif
#endif /* EA_MVE_H */
