/* gemmlowp's fixed-point logistic and tanh on int32 (fixedpoint.h: exp_on_negative_values,
 * one_over_one_plus_x_for_x_in_0_1, one_minus_x_over_one_plus_x_for_x_in_0_1, logistic, tanh), which
 * TFLM's int8 LOGISTIC and TANH call with a Q4.27 input. Raw values only: a "Qk" argument names its
 * integer bits. Internal to the runtime's operators. */
#ifndef EA_FIXEDPOINT_H
#define EA_FIXEDPOINT_H

#include <stdint.h>

#include "ea_quant.h"

/* exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor expansion around -1/8). */
static inline int32_t ea_fp_exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;    /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 */
    const int32_t x = ea_wrap_add(a, 1 << 28);
    const int32_t x2 = ea_srdhm(x, x);
    const int32_t x3 = ea_srdhm(x2, x);
    const int32_t x4 = ea_srdhm(x2, x2);
    const int32_t x4_over_4 = ea_rdbypot(x4, 2);
    const int32_t poly = ea_rdbypot(ea_wrap_add(ea_srdhm(ea_wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
    return ea_wrap_add(constant_term, ea_srdhm(constant_term, ea_wrap_add(x, poly)));
}

/* exp(a) for a <= 0 with `int_bits` integer bits (1..5 here); result Q0.31. */
static inline int32_t ea_fp_exp_on_negative_values(int32_t a, int int_bits) {
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int frac_bits = 31 - int_bits;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = ea_fp_exp_quarter(ea_sat_shl(a_mod_quarter_minus_one_quarter, int_bits)); /* Rescale<0> */
    const int32_t remainder = ea_wrap_sub(a_mod_quarter_minus_one_quarter, a);
    for (int e = -2; e <= 4 && e < int_bits; ++e)   /* the barrel shifter: exp(-2^e) per set bit */
        if (remainder & ((int32_t)1 << (frac_bits + e))) result = ea_srdhm(result, multipliers[e + 2]);
    if (a == 0) result = INT32_MAX; /* exp(0) = 1 */
    return result;
}

/* Newton-Raphson for 1 / (1 + a), a in [0, 1) Q0.31; returns x in Q2.29 and half_denominator. */
static inline int32_t ea_fp_reciprocal_q2(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* RoundingHalfSum(a, 1) */
    const int32_t f2_one = (int32_t)1 << 29;
    int32_t x = ea_wrap_add(1515870810 /* 48/17 */, ea_srdhm(half_denominator, -1010580540 /* -32/17 */));
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus = ea_wrap_sub(f2_one, ea_srdhm(half_denominator, x));
        x = ea_wrap_add(x, ea_sat_shl(ea_srdhm(x, one_minus), 2));
    }
    return x;
}

/* logistic(a) for a raw input with `int_bits` integer bits; result Q0.31. */
static inline int32_t ea_fp_logistic(int32_t a, int int_bits) {
    if (a == 0) return 1 << 30; /* one half */
    const int32_t abs_a = a > 0 ? a : -a;
    const int32_t e = ea_fp_exp_on_negative_values(-abs_a, int_bits);
    const int32_t pos = ea_sat_shl(ea_fp_reciprocal_q2(e), 1); /* Rescale<0>(ExactMulByPot<-1>(x)) */
    return a > 0 ? pos : ea_wrap_sub(INT32_MAX, pos);        /* One() - result for negative inputs */
}

/* tanh(a) for a raw input with `int_bits` integer bits; result Q0.31. */
static inline int32_t ea_fp_tanh(int32_t a, int int_bits) {
    if (a == 0) return 0;
    const int32_t n = a < 0 ? a : -a;
    /* exp(2n): the same raw value read with one more integer bit (ExactMulByPot<1>). */
    const int32_t e = ea_fp_exp_on_negative_values(n, int_bits + 1);
    const int32_t t = ea_sat_shl(ea_wrap_sub(ea_fp_reciprocal_q2(e), 1 << 29), 2); /* (1-e)/(1+e) */
    return a < 0 ? ea_wrap_sub(0, t) : t;
}

#endif /* EA_FIXEDPOINT_H */
