/* Host driver for firmware_models/runtime/ea_quant.c (tests/test_fw_quant.py): each stdin line holds
 * "a b c pow2" with a, b, c as float bit patterns in hex; it prints "rc mult shift" of
 * ea_quantize_multiplier(a, b, c, pow2), one line per input line. */
#include <stdio.h>
#include <string.h>

#include "ea_quant.h"

int main(void) {
    unsigned ua, ub, uc;
    int pow2;
    while (scanf("%x %x %x %d", &ua, &ub, &uc, &pow2) == 4) {
        float a, b, c;
        memcpy(&a, &ua, sizeof a);
        memcpy(&b, &ub, sizeof b);
        memcpy(&c, &uc, sizeof c);
        int32_t mult = 0, shift = 0;
        const int rc = ea_quantize_multiplier(a, b, c, pow2, &mult, &shift);
        printf("%d %ld %ld\n", rc, (long)mult, (long)shift);
    }
    return 0;
}
