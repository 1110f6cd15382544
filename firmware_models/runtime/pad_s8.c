/* PAD / PADV2 int8: copies the input into the middle of the output and fills the border with `value`
 * (the output zero point for PAD, the constant tensor for PADV2). Shapes extended to 6 dims. */
#include "ea_kernels.h"

void ea_pad_s8(const int32_t in_dims[6], const int32_t before[6], const int32_t after[6], int8_t value,
               const int8_t *in, int8_t *out) {
    int32_t od[6];
    for (int d = 0; d < 6; ++d) od[d] = before[d] + in_dims[d] + after[d];
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < od[0]; ++i0)
        for (int32_t i1 = 0; i1 < od[1]; ++i1)
            for (int32_t i2 = 0; i2 < od[2]; ++i2)
                for (int32_t i3 = 0; i3 < od[3]; ++i3)
                    for (int32_t i4 = 0; i4 < od[4]; ++i4)
                        for (int32_t i5 = 0; i5 < od[5]; ++i5) {
                            const int32_t c[6] = {i0 - before[0], i1 - before[1], i2 - before[2],
                                                  i3 - before[3], i4 - before[4], i5 - before[5]};
                            int32_t src = 0;
                            int d = 0;
                            for (; d < 6; ++d) {
                                if (c[d] < 0 || c[d] >= in_dims[d]) break;
                                src = src * in_dims[d] + c[d];
                            }
                            out[o++] = d == 6 ? in[src] : value;
                        }
}
