/* Kernel entry points and their parameter structs (naming after TFLM's reference kernels and CMSIS-NN).
 * Shapes are NHWC; all shapes and offsets were validated by the operator's prepare, so kernels do no
 * checking of their own. Bias is int32 little-endian bytes (may be unaligned, it points into the
 * flatbuffer) or NULL.
 *
 * Each kernel's reference C version lives in its operator's file (ops/<op>.c), marked EA_KERNEL.
 * Instruction-set variants (Arm DSP, MVE, ...) live in kernels/<set>/ (kernels/README.md): a board's
 * board.mk picks the set with EA_KERNELS=<set>, the build adds that folder's files, and a variant
 * defining the same function replaces the reference one at link time. A kernel that may need working
 * memory has a _get_buffer_size function (CMSIS-NN's convention: bytes of scratch for these shapes,
 * 0 for the reference C); prepare asks the arena planner for that much and invoke passes it as
 * `scratch`. */
#ifndef EA_KERNELS_H
#define EA_KERNELS_H

#include <stdint.h>

#include "ea_quant.h"

/* A reference kernel: weak, so that a variant of the same name in kernels/<EA_KERNELS>/ wins. */
#define EA_KERNEL __attribute__((weak))

/* GCC's reassociation turns a chain of multiply-accumulates (wrapping uint32 sums) into a tree of
 * products and spills them; keep the chains for the MLA it should emit. Other compilers: nothing. */
#if defined(__GNUC__) && !defined(__clang__)
#define EA_KEEP_MAC_CHAINS __attribute__((optimize("no-tree-reassoc")))
/* The same, and no scheduling before register allocation: in a long unrolled body GCC hoists every load
 * to the top and spills most of them to the stack. */
#define EA_KEEP_MAC_CHAINS_UNSCHEDULED __attribute__((optimize("no-tree-reassoc", "no-schedule-insns")))
#else
#define EA_KEEP_MAC_CHAINS
#define EA_KEEP_MAC_CHAINS_UNSCHEDULED
#endif

typedef struct {
    int32_t n, h, w, c;
} ea_dims4;

typedef struct {
    int32_t input_offset;   /* -input zero point */
    int32_t output_offset;  /* output zero point */
    int32_t stride_w, stride_h, dil_w, dil_h, pad_w, pad_h;
    int32_t depth_multiplier; /* depthwise only */
    int32_t act_min, act_max;
} ea_conv_params;

/* Per-output-channel requantization of an int8 matrix product: acc = bias[oc] + sum(w * x), where bias
 * is the folded bias (ea_op_reserve_folded_bias: the model's bias plus input_offset x the channel's
 * weight sum, so the sum runs over raw int8 values), then MultiplyByQuantizedMultiplier(acc, mult[oc],
 * shift[oc]) (mult[0], shift[0] for every channel when per_channel is 0), + out_offset, clamped. */
typedef struct {
    const int32_t *bias, *mult, *shift;
    int32_t per_channel;
    int32_t out_offset, act_min, act_max;
} ea_requant;

/* The matrix product under CONV_2D and FULLY_CONNECTED: for row r < rows (an output channel, weights
 * w + r * depth) and column c < cols (a pixel or batch row, values x + c * x_stride), out[c * out_stride
 * + r] = requantized sum over depth of w * x. All int8, no offsets (folded into q->bias). */
void ea_mat_s8(const ea_requant *q, const int8_t *w, int32_t rows, int32_t depth, const int8_t *x, int32_t x_stride,
               int32_t cols, int8_t *out, int32_t out_stride);

/* One channel's requantization constants, taken once per channel (a kernel hoists them out of its
 * loops): MultiplyByQuantizedMultiplier(acc, mult, shift) = RoundingDivideByPOT(SRDHM(acc << left,
 * mult), right). mult is in [0, 2^31) (ea_quantize_multiplier), so SRDHM's one overflow case
 * (INT32_MIN x INT32_MIN) cannot occur; right is in [0, 31]. */
typedef struct {
    int32_t mult, left, right, mask, half_mask;
} ea_rq;

static inline ea_rq ea_rq_of(const ea_requant *q, int32_t r) {
    const int32_t i = q->per_channel ? r : 0, shift = q->shift[i];
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const ea_rq c = {q->mult[i], shift > 0 ? shift : 0, right, mask, mask >> 1};
    return c;
}

/* ea_mbqm's result (ea_quant.h) for these constants, + out_offset, clamped: the same value, fewer steps. */
static inline int8_t ea_rq_out(const ea_rq *c, const ea_requant *q, uint32_t acc) {
    const int32_t x = (int32_t)(acc << c->left);
    const int32_t y = (int32_t)(((int64_t)x * (int64_t)c->mult + ((int64_t)1 << 30)) >> 31);
    const int32_t neg = (int32_t)((uint32_t)y >> 31);
    const int32_t z = (y >> c->right) + ((y & c->mask) > c->half_mask + neg ? 1 : 0);
    return (int8_t)ea_clamp(ea_wrap_add(z, q->out_offset), q->act_min, q->act_max);
}

/* One requantized output of row (channel) r from its accumulator (outside hot loops). Not inlined:
 * it keeps the kernels' registers (and stack) for their accumulators. */
__attribute__((noinline, unused)) static int8_t ea_requant_s8(const ea_requant *q, uint32_t acc, int32_t r) {
    const ea_rq c = ea_rq_of(q, r);
    return ea_rq_out(&c, q, acc);
}

/* Convolutions read the folded bias (never the model's raw bias) and the per-channel multipliers. */
void ea_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out,
                void *scratch);
int32_t ea_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims);
/* The reference convolution (what ea_conv_s8 is in ops/conv_2d.c): 1x1 convolutions as one ea_mat_s8 in
 * place, others through a two-column im2col (scratch: 2 x depth bytes, rounded up to 4). A variant may
 * fall back on it. */
void ea_conv_s8_mat(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                    const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out,
                    void *scratch);
/* One im2col column: the window at (iy0, ix0) of one image, channels [c0, c0 + filter c), as filter
 * h x w x c int8 values; taps outside the image hold the input zero point. */
void ea_im2col_s8(const ea_conv_params *p, const ea_dims4 *in_dims, const int8_t *image, const ea_dims4 *fd,
                  int32_t c0, int32_t iy0, int32_t ix0, int8_t *col);

void ea_depthwise_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                          const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out,
                          void *scratch);
int32_t ea_depthwise_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims);
/* Depthwise helper shared by the variants: the input pointer of each filter tap of the window at
 * (iy0, ix0); taps outside the image point at zp_row (input zero points, one per input channel). */
void ea_dw_taps(const ea_conv_params *p, const ea_dims4 *in_dims, const int8_t *image, const ea_dims4 *filter_dims,
                int32_t iy0, int32_t ix0, const int8_t *zp_row, const int8_t **taps);

typedef struct {
    int32_t input_offset, filter_offset, output_offset;
    int32_t act_min, act_max;
} ea_fc_params;

/* FULLY_CONNECTED, per-tensor (q->per_channel 0; TFLM applies the filter zero point, p->filter_offset)
 * or per-channel (filter zero point 0 by the spec). */
void ea_fully_connected_s8(const ea_fc_params *p, const ea_requant *q, int32_t batches, int32_t accum_depth,
                           int32_t out_depth, const int8_t *in, const int8_t *filter, int8_t *out, void *scratch);
int32_t ea_fully_connected_s8_get_buffer_size(int32_t accum_depth, int32_t out_depth);

typedef struct {
    int32_t stride_w, stride_h, filter_w, filter_h, pad_w, pad_h;
    int32_t act_min, act_max;
} ea_pool_params;

void ea_max_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
                    int8_t *out);
/* Returns -1 if a window covers no input element (TFLM fails the same way). */
int ea_avg_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
                   int8_t *out, void *scratch);
int32_t ea_avg_pool_s8_get_buffer_size(int32_t out_w, int32_t channels);

/* Both inputs are shifted left by this many bits before rescaling (TFLM's int8 ADD). */
#define EA_ADD_LEFT_SHIFT 20

typedef struct {
    int32_t in1_offset, in2_offset, out_offset;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
} ea_add_params;

/* Shapes extended to 6 dims (leading 1s); each input dim equals the output dim or is 1 (broadcast).
 * scratch: ea_add_s8_get_buffer_size(output elements) bytes (its tables; NULL when that is 0). */
void ea_add_s8(const ea_add_params *p, const int32_t in1_dims[6], const int8_t *in1, const int32_t in2_dims[6],
               const int8_t *in2, const int32_t out_dims[6], int8_t *out, void *scratch);
int32_t ea_add_s8_get_buffer_size(int32_t count);

typedef struct {
    int32_t in_zp, out_zp;
    int32_t mult, shift;     /* input scale / output scale */
    uint32_t axes_mask;      /* reduced dims of the input extended to 6 dims */
} ea_mean_params;

void ea_mean_s8(const ea_mean_params *p, const int32_t in_dims[6], const int8_t *in, int8_t *out);

typedef struct {
    /* int16 (checked at prepare) keeps PAD's struct within an operator slot */
    int16_t before[6], after[6];
    int8_t value;
} ea_pad_params;

void ea_pad_s8(const ea_pad_params *p, const int32_t in_dims[6], const int8_t *in, int8_t *out);

typedef struct {
    int32_t mult, left_shift, diff_min;
} ea_softmax_params;

void ea_softmax_s8(const ea_softmax_params *p, int32_t outer, int32_t depth, const int8_t *in, int8_t *out);

typedef struct {
    float scale;
    int32_t zero_point;
} ea_affine_params;

typedef struct {
    int32_t in_zp, out_zp, mult, shift;
} ea_requantize_params;

/* float32 -> int8 (AffineQuantize); `in` holds floats as bytes (the arena is a byte array). */
void ea_quantize_f32_s8(const ea_affine_params *p, uint32_t n, const uint8_t *in, int8_t *out);
/* int8 -> int8 with new scale and zero point (Requantize). */
void ea_requantize_s8(const ea_requantize_params *p, uint32_t n, const int8_t *in, int8_t *out);
/* int8 -> float32, written as bytes. */
void ea_dequantize_s8_f32(const ea_affine_params *p, uint32_t n, const int8_t *in, uint8_t *out);

/* Byte copy of the shape-only operators (in and out never overlap: the planner keeps them apart). */
void ea_copy_bytes(uint32_t n, const uint8_t *in, uint8_t *out);

#endif /* EA_KERNELS_H */
