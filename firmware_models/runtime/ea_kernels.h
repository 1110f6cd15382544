/* Kernel entry points: plain loops, quantization parameters passed explicitly (naming after TFLM's
 * reference kernels and CMSIS-NN). Shapes are NHWC; all shapes and offsets were validated by the model
 * loader, so kernels do no checking of their own. Bias is int32 little-endian bytes (may be unaligned,
 * it points into the flatbuffer) or NULL. */
#ifndef EA_KERNELS_H
#define EA_KERNELS_H

#include <stdint.h>

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

void ea_conv_s8(const ea_conv_params *p, const int32_t *mult, const int32_t *shift, const ea_dims4 *in_dims,
                const int8_t *in, const ea_dims4 *filter_dims, const int8_t *filter, const uint8_t *bias,
                const ea_dims4 *out_dims, int8_t *out);

void ea_depthwise_conv_s8(const ea_conv_params *p, const int32_t *mult, const int32_t *shift,
                          const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *filter_dims,
                          const int8_t *filter, const uint8_t *bias, const ea_dims4 *out_dims, int8_t *out);

typedef struct {
    int32_t input_offset, filter_offset, output_offset;
    int32_t act_min, act_max;
} ea_fc_params;

/* Per-tensor quantization (TFLM applies the filter zero point here). */
void ea_fully_connected_s8(const ea_fc_params *p, int32_t mult, int32_t shift, int32_t batches, int32_t accum_depth,
                           int32_t out_depth, const int8_t *in, const int8_t *filter, const uint8_t *bias, int8_t *out);
/* Per-channel quantization (one multiplier per output unit; filter zero point is 0 by the spec). */
void ea_fully_connected_per_channel_s8(const ea_fc_params *p, const int32_t *mult, const int32_t *shift,
                                       int32_t batches, int32_t accum_depth, int32_t out_depth, const int8_t *in,
                                       const int8_t *filter, const uint8_t *bias, int8_t *out);

typedef struct {
    int32_t stride_w, stride_h, filter_w, filter_h, pad_w, pad_h;
    int32_t act_min, act_max;
} ea_pool_params;

void ea_max_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
                    int8_t *out);
/* Returns -1 if a window covers no input element (TFLM fails the same way). */
int ea_avg_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
                   int8_t *out);

typedef struct {
    int32_t in1_offset, in2_offset, out_offset, left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
} ea_add_params;

/* Shapes extended to 6 dims (leading 1s); each input dim equals the output dim or is 1 (broadcast). */
void ea_add_s8(const ea_add_params *p, const int32_t in1_dims[6], const int8_t *in1, const int32_t in2_dims[6],
               const int8_t *in2, const int32_t out_dims[6], int8_t *out);

/* Mean over the dims whose bit is set in axes_mask (input extended to 6 dims); mult/shift quantize
 * input scale / output scale. */
void ea_mean_s8(const int32_t in_dims[6], const int8_t *in, unsigned axes_mask, int32_t in_zp, int32_t out_zp,
                int32_t mult, int32_t shift, int8_t *out);

void ea_pad_s8(const int32_t in_dims[6], const int32_t before[6], const int32_t after[6], int8_t value,
               const int8_t *in, int8_t *out);

void ea_softmax_s8(int32_t outer, int32_t depth, const int8_t *in, int32_t mult, int32_t left_shift,
                   int32_t diff_min, int8_t *out);

/* float32 -> int8 (AffineQuantize); `in` holds floats as bytes (the arena is a byte array). */
void ea_quantize_f32_s8(uint32_t n, const uint8_t *in, float scale, int32_t zero_point, int8_t *out);
/* int8 -> int8 with new scale and zero point (Requantize). */
void ea_requantize_s8(uint32_t n, const int8_t *in, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift,
                      int8_t *out);
/* int8 -> float32, written as bytes. */
void ea_dequantize_s8_f32(uint32_t n, const int8_t *in, float scale, int32_t zero_point, uint8_t *out);

#endif /* EA_KERNELS_H */
