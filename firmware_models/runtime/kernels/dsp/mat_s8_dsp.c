/* ea_mat_s8 (the matrix product under CONV_2D and FULLY_CONNECTED) with the DSP extension: SXTB16
 * widens four int8 of a word into two pairs of int16 (bytes 0 and 2, bytes 1 and 3), SMLAD multiplies
 * and adds a pair in one instruction. A 2 x 2 block (two channels, two columns) loads 4 words and
 * widens each once for 16 MACs in 8 SMLADs. Same sums modulo 2^32 as the reference. */
#include "ea_dsp.h"
#include "ea_kernels.h"

void ea_mat_s8(const ea_requant *q, const int8_t *w, int32_t rows, int32_t depth, const int8_t *x, int32_t x_stride,
               int32_t cols, int8_t *out, int32_t out_stride) {
    int32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const int8_t *w0 = w + r * depth, *w1 = w0 + depth;
        const uint32_t b0 = (uint32_t)q->bias[r], b1 = (uint32_t)q->bias[r + 1];
        const ea_rq q0 = ea_rq_of(q, r), q1 = ea_rq_of(q, r + 1);
        int32_t c = 0;
        for (; c + 2 <= cols; c += 2) {
            const int8_t *x0 = x + c * x_stride, *x1 = x0 + x_stride, *p0 = w0, *p1 = w1;
            uint32_t a00 = b0, a01 = b1, a10 = b0, a11 = b1;
            int32_t k = depth;
            for (; k >= 4; k -= 4) {
                /* each widened word is used twice: by both rows (x) or both columns (w) */
                const uint32_t wa = ea_read_s8x4(p0), xa = ea_read_s8x4(x0);
                p0 += 4, x0 += 4;
                const uint32_t wa0 = ea_sxtb16(wa), wa1 = ea_sxtb16_ror8(wa);
                const uint32_t xa0 = ea_sxtb16(xa), xa1 = ea_sxtb16_ror8(xa);
                a00 = ea_smlad(wa0, xa0, a00);
                a00 = ea_smlad(wa1, xa1, a00);
                const uint32_t xb = ea_read_s8x4(x1);
                x1 += 4;
                const uint32_t xb0 = ea_sxtb16(xb), xb1 = ea_sxtb16_ror8(xb);
                a10 = ea_smlad(wa0, xb0, a10);
                a10 = ea_smlad(wa1, xb1, a10);
                const uint32_t wb = ea_read_s8x4(p1);
                p1 += 4;
                const uint32_t wb0 = ea_sxtb16(wb), wb1 = ea_sxtb16_ror8(wb);
                a11 = ea_smlad(wb0, xb0, a11);
                a11 = ea_smlad(wb1, xb1, a11);
                a01 = ea_smlad(wb0, xa0, a01);
                a01 = ea_smlad(wb1, xa1, a01);
            }
            for (; k > 0; --k) {
                const int32_t u = *p0++, v = *p1++, s = *x0++, t = *x1++;
                a00 += (uint32_t)(u * s), a01 += (uint32_t)(v * s);
                a10 += (uint32_t)(u * t), a11 += (uint32_t)(v * t);
            }
            int8_t *o = out + c * out_stride + r;
            o[0] = ea_rq_out(&q0, q, a00);
            o[1] = ea_rq_out(&q1, q, a01);
            o[out_stride] = ea_rq_out(&q0, q, a10);
            o[out_stride + 1] = ea_rq_out(&q1, q, a11);
        }
        for (; c < cols; ++c) {
            const int8_t *x0 = x + c * x_stride, *p0 = w0, *p1 = w1;
            uint32_t a0 = b0, a1 = b1;
            int32_t k = depth;
            for (; k >= 4; k -= 4) {
                const uint32_t wa = ea_read_s8x4(p0), wb = ea_read_s8x4(p1), xa = ea_read_s8x4(x0);
                p0 += 4, p1 += 4, x0 += 4;
                const uint32_t xa0 = ea_sxtb16(xa), xa1 = ea_sxtb16_ror8(xa);
                a0 = ea_smlad(ea_sxtb16(wa), xa0, a0);
                a0 = ea_smlad(ea_sxtb16_ror8(wa), xa1, a0);
                a1 = ea_smlad(ea_sxtb16(wb), xa0, a1);
                a1 = ea_smlad(ea_sxtb16_ror8(wb), xa1, a1);
            }
            for (; k > 0; --k) {
                const int32_t s = *x0++;
                a0 += (uint32_t)(*p0++ * s);
                a1 += (uint32_t)(*p1++ * s);
            }
            out[c * out_stride + r] = ea_requant_s8(q, a0, r);
            out[c * out_stride + r + 1] = ea_requant_s8(q, a1, r + 1);
        }
    }
    for (; r < rows; ++r) {
        for (int32_t c = 0; c < cols; ++c) {
            const int8_t *x0 = x + c * x_stride, *p0 = w + r * depth;
            uint32_t a = (uint32_t)q->bias[r];
            int32_t k = depth;
            for (; k >= 4; k -= 4) {
                const uint32_t wa = ea_read_s8x4(p0), xa = ea_read_s8x4(x0);
                p0 += 4, x0 += 4;
                a = ea_smlad(ea_sxtb16(wa), ea_sxtb16(xa), a);
                a = ea_smlad(ea_sxtb16_ror8(wa), ea_sxtb16_ror8(xa), a);
            }
            for (; k > 0; --k) a += (uint32_t)(*p0++ * *x0++);
            out[c * out_stride + r] = ea_requant_s8(q, a, r);
        }
    }
}
