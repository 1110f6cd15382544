/* MEAN int8 over any set of axes (as TFLM's EvalIntegerMean -> QuantizedMeanOrSum): 1/count is folded
 * into the output multiplier and the zero-point-corrected sum is requantized, rounding to nearest, even
 * when input and output quantization are identical (older TFLM truncated in that case; the pinned
 * tflite-micro does not, as the random-model test shows). */
#include "ea_kernels.h"
#include "ea_quant.h"

static int floor_log2_u32(uint32_t v) {
    int r = -1;
    while (v) {
        v >>= 1;
        r++;
    }
    return r;
}

void ea_mean_s8(const int32_t in_dims[6], const int8_t *in, unsigned axes_mask, int32_t in_zp, int32_t out_zp,
                int32_t mult, int32_t shift, int8_t *out) {
    int32_t stride[6], st = 1, kept[6], red[6];
    int nk = 0, nr = 0;
    int32_t n_out = 1, n_red = 1;
    for (int d = 5; d >= 0; --d) {
        stride[d] = st;
        st *= in_dims[d];
    }
    for (int d = 0; d < 6; ++d) {
        if (axes_mask & (1u << d)) {
            red[nr++] = d;
            n_red *= in_dims[d];
        } else {
            kept[nk++] = d;
            n_out *= in_dims[d];
        }
    }
    /* TFLM: shift = min(floor(log2(count)), 32, 31 + shift); multiplier <<= shift, then / count. */
    int k = floor_log2_u32((uint32_t)n_red);
    if (k > 32) k = 32;
    if (k > 31 + shift) k = 31 + shift;
    const int32_t m = (int32_t)((((int64_t)mult) << k) / n_red);
    const int32_t s = shift - k;
    for (int32_t o = 0; o < n_out; ++o) {
        int32_t base = 0, rem = o;
        for (int i = nk - 1; i >= 0; --i) { /* row-major coordinates of the kept dims */
            const int d = kept[i];
            base += (rem % in_dims[d]) * stride[d];
            rem /= in_dims[d];
        }
        int32_t sum = 0;
        for (int32_t r = 0; r < n_red; ++r) {
            int32_t off = base, rr = r;
            for (int i = nr - 1; i >= 0; --i) {
                const int d = red[i];
                off += (rr % in_dims[d]) * stride[d];
                rr /= in_dims[d];
            }
            sum += in[off];
        }
        const int32_t shifted = (int32_t)((int64_t)sum - (int64_t)in_zp * n_red);
        const int32_t v = ea_wrap_add(ea_mbqm(shifted, m, s), out_zp);
        out[o] = (int8_t)ea_clamp(v, -128, 127);
    }
}
