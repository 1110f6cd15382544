/* Host driver for tests/test_fw_requant.py: the runtime's shortcut requantizations against TFLite's
 * MultiplyByQuantizedMultiplier as written (ea_mbqm: SRDHM, then RoundingDivideByPOT), on the corner
 * values of x and mult for every right shift and on random ones. Prints "checked N, differ M" and exits
 * 1 on any difference (the first few are printed). */
#include <stdio.h>
#include <stdlib.h>

#include "ea_quant.h"

static unsigned long long state = 88172645463325252ull;
static uint32_t rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)state;
}

int main(int argc, char **argv) {
    const long per_shift = argc > 1 ? atol(argv[1]) : 100000;
    static const int32_t xs[] = {INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3,
                                 (1 << 30) - 1, 1 << 30, INT32_MAX - 1, INT32_MAX};
    static const int32_t ms[] = {0, 1, 2, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, INT32_MAX - 1, INT32_MAX};
    long n = 0, bad = 0;
    for (int32_t r = 0; r <= 31; ++r) {
        for (long k = 0; k < (long)(sizeof xs / sizeof xs[0]) * (long)(sizeof ms / sizeof ms[0]) + per_shift; ++k) {
            int32_t x, m;
            if (k < (long)(sizeof xs / sizeof xs[0] * (sizeof ms / sizeof ms[0]))) {
                x = xs[k % (long)(sizeof xs / sizeof xs[0])];
                m = ms[k / (long)(sizeof xs / sizeof xs[0])];
            } else {
                x = (int32_t)rnd();
                if (k & 1) x >>= rnd() % 31;          /* small magnitudes too */
                if (k & 4) x = (int32_t)(x & ~((1 << (rnd() % 12)) - 1)) | (int32_t)(rnd() & 1); /* near ties */
                m = (int32_t)(rnd() >> 1);
                if (k & 2) m |= 1 << 30;              /* QuantizeMultiplier's range [2^30, 2^31) */
            }
            const int32_t want = ea_mbqm(x, m, -r), got = ea_mbqm_r(x, m, r);
            n++;
            if (got != want && ++bad <= 5) printf("x %ld mult %ld shift -%ld: %ld, want %ld\n", (long)x, (long)m, (long)r, (long)got, (long)want);
        }
    }
    printf("checked %ld, differ %ld\n", n, bad);
    return bad != 0;
}
