/* ea_mat_s8 (the matrix product under CONV_2D and FULLY_CONNECTED) with MVE: VMLADAVA.S8 multiplies
 * 16 int8 pairs and adds the 16 products to a scalar accumulator in one instruction. A block of four
 * rows (channels) and one column loads 16 inputs once and the 16 weights of each row, for 64 MACs in
 * 5 loads and 4 VMLADAVAs; the depth's last (depth mod 16) values are loaded with a tail predicate
 * (VCTP.8, zeroing loads), so no depth needs padding and nothing past a row is read. The four sums are
 * requantized as one vector (ea_mve_rq.h). Same sums modulo 2^32 as the reference. */
#include "ea_kernels.h"
#include "ea_mve.h"
#include "ea_mve_rq.h"

/* One row against one column: the rows left over below a multiple of four. */
static int32_t dot_s8(int32_t acc, const int8_t *w, const int8_t *x, int32_t depth) {
    for (; depth >= 16; depth -= 16, w += 16, x += 16) acc = vmladavaq_s8(acc, vldrbq_s8(w), vldrbq_s8(x));
    if (depth > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)depth);
        acc = vmladavaq_s8(acc, vldrbq_z_s8(w, p), vldrbq_z_s8(x, p));
    }
    return acc;
}

void ea_mat_s8(const ea_requant *q, const int8_t *w, int32_t rows, int32_t depth, const int8_t *x, int32_t x_stride,
               int32_t cols, int8_t *out, int32_t out_stride) {
    const int32_t tail = depth & 15;
    const mve_pred16_t tp = vctp8q((uint32_t)tail);
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const int8_t *w0 = w + r * depth;
        const int32_t b0 = q->bias[r], b1 = q->bias[r + 1], b2 = q->bias[r + 2], b3 = q->bias[r + 3];
        const ea_rqv rq = ea_rqv_of(q, r);
        for (int32_t c = 0; c < cols; ++c) {
            const int8_t *xp = x + c * x_stride, *p0 = w0, *p1 = w0 + depth, *p2 = p1 + depth, *p3 = p2 + depth;
            int32_t a0 = b0, a1 = b1, a2 = b2, a3 = b3;
            for (int32_t k = depth >> 4; k > 0; --k) {
                const int8x16_t xv = vldrbq_s8(xp);
                xp += 16;
                a0 = vmladavaq_s8(a0, vldrbq_s8(p0), xv);
                p0 += 16;
                a1 = vmladavaq_s8(a1, vldrbq_s8(p1), xv);
                p1 += 16;
                a2 = vmladavaq_s8(a2, vldrbq_s8(p2), xv);
                p2 += 16;
                a3 = vmladavaq_s8(a3, vldrbq_s8(p3), xv);
                p3 += 16;
            }
            if (tail) {
                const int8x16_t xv = vldrbq_z_s8(xp, tp);
                a0 = vmladavaq_s8(a0, vldrbq_z_s8(p0, tp), xv);
                a1 = vmladavaq_s8(a1, vldrbq_z_s8(p1, tp), xv);
                a2 = vmladavaq_s8(a2, vldrbq_z_s8(p2, tp), xv);
                a3 = vmladavaq_s8(a3, vldrbq_z_s8(p3, tp), xv);
            }
            vstrbq_s32(out + c * out_stride + r, ea_rqv_apply(&rq, q, ea_mve_vec4(a0, a1, a2, a3)));
        }
    }
    for (; r < rows; ++r) {
        const int8_t *wr = w + r * depth;
        for (int32_t c = 0; c < cols; ++c)
            out[c * out_stride + r] = ea_requant_s8(q, (uint32_t)dot_s8(q->bias[r], wr, x + c * x_stride, depth), r);
    }
}
