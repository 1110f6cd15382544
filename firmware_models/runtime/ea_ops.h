/* The operator interface (TFLM-shaped): an operator is a builtin code, a prepare function and an invoke
 * function, one row of the table in ea_ops.c. Each operator lives in its own file under ops/: its
 * kernel, its prepare (read the builtin options, check the tensors, fill the kernel's own parameter
 * struct) and its invoke (hand that struct and the tensors' data to the kernel). docs/firmware_runtime.md
 * shows how to add one.
 *
 * Internal to the runtime: the public API is ea_runtime.h. */
#ifndef EA_OPS_H
#define EA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ea_flatbuffer.h"
#include "ea_kernels.h"
#include "ea_runtime.h"

/* TFLite TensorType values. */
enum { EA_T_FLOAT32 = 0, EA_T_INT32 = 2, EA_T_UINT8 = 3, EA_T_INT64 = 4, EA_T_BOOL = 6, EA_T_INT16 = 7, EA_T_INT8 = 9 };

/* Largest tensor accepted, in elements: keeps every index and sum in int32 range. */
#define EA_MAX_ELEMS (1 << 24)
/* Largest stride, dilation, filter or padding extent accepted (keeps window arithmetic in int32). */
#define EA_MAX_WINDOW (1 << 16)

/* What prepare sees: the model (tensors parsed, shapes checked), the operator (tensor indices set),
 * its builtin options, and where to ask for arena memory. */
typedef struct {
    ea_model *m;
    ea_op *op;
    uint32_t index;          /* operator index (messages) */
    fb_reader *r;
    fb_table options;        /* the BuiltinOptions table, valid when options_type != 0 */
    uint8_t options_type;    /* BuiltinOptions union type, 0 when the operator has none */
    uint32_t persistent;     /* persistent arena bytes reserved so far, every operator included */
    uint32_t scratch_bytes;  /* scratch this operator asked for (ea_op_request_scratch) */
    fb_vector inputs;        /* every input tensor index (op->in keeps the first three): ea_prepare_input */
    uint8_t all_inputs_used; /* set by a prepare that reads inputs past the third (else > 3 is refused) */
} ea_prepare_ctx;

/* Input k (< c->inputs.count) of the operator being prepared: a tensor index, or -1 when absent. */
static inline int32_t ea_prepare_input(const ea_prepare_ctx *c, uint32_t k) { return fb_vec_i32(c->r, &c->inputs, k); }

typedef ea_status (*ea_prepare_fn)(ea_prepare_ctx *c);
typedef ea_status (*ea_invoke_fn)(ea_model *m, const ea_op *op);

/* Code that runs only while a model loads, or on an error: optimized for size, not speed (GCC's cold
 * attribute; functions only such code calls follow). The inference path (invoke, kernels) is not. */
#define EA_COLD __attribute__((cold))

/* Signatures of an operator's two functions: EA_PREPARE(conv_2d) { ... } defines ea_conv_2d_prepare. */
#define EA_PREPARE(name) EA_COLD ea_status ea_##name##_prepare(ea_prepare_ctx *c)
#define EA_INVOKE(name) ea_status ea_##name##_invoke(ea_model *m, const ea_op *op)

typedef struct {
    int32_t builtin;
    ea_prepare_fn prepare;
    ea_invoke_fn invoke;
} ea_op_registration;

extern const ea_op_registration ea_op_table[];
extern const uint32_t ea_op_table_len;

/* The operator's parameter struct inside op->params (checked at compile time to fit). */
#define EA_OP_PARAMS(type, op)                                                                        \
    ((void)sizeof(char[sizeof(type) <= sizeof((op)->params) ? 1 : -1]), (type *)(void *)(op)->params)
#define EA_OP_CPARAMS(type, op)                                                                       \
    ((void)sizeof(char[sizeof(type) <= sizeof((op)->params) ? 1 : -1]), (const type *)(const void *)(op)->params)

/* ---------------------------------------------------------------- errors (ea_op_util.c) */

/* m->error = a b; returns EA_ERR_MODEL. */
EA_COLD ea_status ea_fail(ea_model *m, const char *a, const char *b);
/* Appends " (<label> <index>)" to the message a failed flatbuffer read left; returns EA_ERR_MODEL. */
EA_COLD ea_status ea_fail_at(ea_model *m, const char *label, int64_t index);
/* "<OPNAME> at op <i>: <msg><detail><number>"; returns EA_ERR_MODEL. */
EA_COLD ea_status ea_op_fail(ea_model *m, uint32_t i, const char *msg, const char *detail, int64_t number, int with_number);
#define EA_OP_FAIL(c, msg) ea_op_fail((c)->m, (c)->index, (msg), NULL, 0, 0)
/* A failed read of the builtin options: the reader's message and the operator index. */
#define EA_OP_OPTIONS_FAIL(c) ea_fail_at((c)->m, "op", (c)->index)
/* The same message at invoke time; returns EA_ERR_RUNTIME. */
EA_COLD ea_status ea_op_runtime_fail(ea_model *m, const ea_op *op, const char *msg);

/* ---------------------------------------------------------------- prepare helpers (ea_op_util.c) */

uint32_t ea_type_size(uint8_t type);
/* An int8 activation tensor with per-tensor quantization ("<role> tensor ..." messages). */
EA_COLD ea_status ea_need_s8(ea_prepare_ctx *c, int32_t idx, const char *role);
/* TFLM ComputeOutSize + ComputePaddingWithOffset for one spatial dimension (padding 0 SAME, 1 VALID);
 * -1 when invalid. */
EA_COLD int ea_window(int32_t padding, int32_t in, int32_t filter, int32_t stride, int32_t dilation, int32_t *out, int32_t *pad);
/* CalculateActivationRangeQuantized for the fused activation `act` of an int8 output. */
EA_COLD ea_status ea_activation(ea_prepare_ctx *c, int act, const ea_tensor *out, int32_t *act_min, int32_t *act_max);
EA_COLD ea_status ea_filter_scales_ok(ea_prepare_ctx *c, const ea_tensor *filter, uint32_t channels, int32_t qdim);
EA_COLD ea_status ea_bias_ok(ea_prepare_ctx *c, int32_t idx, uint32_t channels);
/* Per-channel (or broadcast per-tensor) multipliers of a convolution, as PopulateConvolutionQuantizationParams.
 * With mult == NULL only checks them. */
EA_COLD ea_status ea_conv_multipliers(ea_model *m, uint32_t i, const ea_tensor *in, const ea_tensor *filter,
                              const ea_tensor *out, uint32_t channels, int32_t *mult, int32_t *shift);
/* ea_op.channels flags: what the operator keeps per output channel (the output's last dimension) in
 * the arena's persistent part, filled by the loader once the arena is placed. */
enum {
    EA_CHAN_MULT = 1,       /* multipliers then shifts (ea_conv_multipliers) */
    EA_CHAN_FOLD = 2,       /* then the folded bias: bias + input_offset x sum of the channel's weights */
    EA_CHAN_FOLD_LAST = 4,  /* the filter's channel axis is its last (depthwise), not its first */
};
/* Reserves per-output-channel multipliers and shifts (EA_CHAN_MULT). */
EA_COLD void ea_op_reserve_channels(ea_prepare_ctx *c);
/* Reserves the folded bias (EA_CHAN_FOLD), after the multipliers if the operator has them: the int32
 * bias[oc] + input_offset * sum(filter weights of oc), wrapping like TFLM's int32 accumulator, so a
 * kernel's inner loop is a pure int8 x int8 sum (input 0, filter 1, optional bias 2; input_offset is
 * -input zero point). `channel_last`: the filter's output channel is its last axis. Call after
 * ea_op_reserve_channels. */
EA_COLD void ea_op_reserve_folded_bias(ea_prepare_ctx *c, int channel_last);
/* Fills the folded bias of operator i (the loader, ea_model.c). */
EA_COLD void ea_fold_bias(const ea_model *m, const ea_op *op, int32_t *dst);
/* Asks for a scratch buffer of `bytes` while this operator runs (a kernel's _get_buffer_size); the
 * arena planner places it (ea_plan_scratch). 0: none. */
EA_COLD void ea_op_request_scratch(ea_prepare_ctx *c, int32_t bytes);

/* CONV_2D's checks and parameters, shared with DEPTHWISE_CONV_2D (ops/conv_2d.c). */
EA_COLD ea_status ea_conv_prepare_common(ea_prepare_ctx *c, int depthwise, int8_t padding, int32_t sw, int32_t sh, int32_t dw,
                                 int32_t dh, int32_t dm, int8_t act);

/* ---------------------------------------------------------------- invoke helpers */

/* A constant tensor's data (in the flatbuffer) and a computed one's (in the arena, once initialized). */
static inline const uint8_t *ea_cdata(const ea_model *m, const ea_tensor *t) { return m->data + t->offset; }
static inline uint8_t *ea_vdata(const ea_model *m, const ea_tensor *t) { return m->arena + t->offset; }
static inline const uint8_t *ea_tensor_data(const ea_model *m, int32_t idx) {
    const ea_tensor *t = &m->tensors[idx];
    return (t->is_const ? m->data : m->arena) + t->offset;
}
/* Bias bytes of input 2, or NULL. */
static inline const uint8_t *ea_op_bias(const ea_model *m, const ea_op *op) {
    return op->in[2] >= 0 ? ea_tensor_data(m, op->in[2]) : NULL;
}
static inline ea_dims4 ea_dims4_of(const ea_tensor *t) {
    const ea_dims4 d = {.n = t->dims[0], .h = t->dims[1], .w = t->dims[2], .c = t->dims[3]};
    return d;
}
/* Shape extended to 6 dims with leading 1s. */
void ea_dims6_of(const ea_tensor *t, int32_t out[6]);
/* The per-channel multipliers (shifts follow them) of an operator that reserved them. */
static inline const int32_t *ea_op_multipliers(const ea_model *m, const ea_op *op) {
    return (const int32_t *)(const void *)(m->arena + op->chan_offset);
}
/* The folded bias of an operator that reserved it (ea_op_reserve_folded_bias). */
static inline const int32_t *ea_op_folded_bias(const ea_model *m, const ea_op *op) {
    const ea_tensor *out = &m->tensors[op->out];
    const uint32_t n = (uint32_t)out->dims[out->ndim - 1];
    const uint32_t skip = (op->channels & EA_CHAN_MULT) ? ((8u * n + 15u) & ~15u) : 0u;
    return (const int32_t *)(const void *)(m->arena + op->chan_offset + skip);
}
/* A convolution's requantization: folded bias and per-channel multipliers from the arena. */
static inline ea_requant ea_conv_requant(const ea_model *m, const ea_op *op, const ea_conv_params *p, int32_t channels) {
    const int32_t *mult = ea_op_multipliers(m, op);
    const ea_requant q = {.bias = ea_op_folded_bias(m, op), .mult = mult, .shift = mult + channels, .per_channel = 1,
                          .out_offset = p->output_offset, .act_min = p->act_min, .act_max = p->act_max};
    return q;
}
/* The scratch buffer, or NULL when the kernel asked for none. */
static inline void *ea_op_scratch(const ea_model *m, const ea_op *op) {
    return op->scratch_offset == EA_NO_SCRATCH ? NULL : (void *)(m->arena + op->scratch_offset);
}

/* ---------------------------------------------------------------- elementwise helpers (ea_op_util.c) */

/* Two int8 inputs and an int8 output whose 6-D shapes broadcast (each input dim equals the output's or
 * is 1), as TFLM's ProcessBroadcastShapes accepts them. */
EA_COLD ea_status ea_binary_prepare_common(ea_prepare_ctx *c);
/* One row of a binary elementwise kernel: n outputs, input k advancing by its stride (0: broadcast). */
typedef void (*ea_binary_row_fn)(const void *params, int32_t n, const int8_t *a, int32_t sa, const int8_t *b,
                                 int32_t sb, int8_t *out);
/* Walks the 6-D output in order, broadcasting each input (the loops of TFLM's Broadcast*6DSlow), calling
 * `row` once per innermost row. */
void ea_broadcast_binary_s8(ea_binary_row_fn row, const void *params, const int32_t d1[6], const int8_t *in1,
                            const int32_t d2[6], const int8_t *in2, const int32_t dout[6], int8_t *out);
/* The operator's two inputs and output as 6-D shapes, then ea_broadcast_binary_s8. */
void ea_binary_invoke_s8(const ea_model *m, const ea_op *op, ea_binary_row_fn row, const void *params);
/* One int8 input and an int8 output with the same element count. */
EA_COLD ea_status ea_unary_prepare_common(ea_prepare_ctx *c);
/* An elementwise int8 kernel: n outputs, each a function of its own input alone (and of `params`). */
typedef void (*ea_s8_map_fn)(const void *params, uint32_t n, const int8_t *in, int8_t *out);
/* Prepare's half of ea_s8_map: asks for the 512 bytes of its table when the output has at least
 * EA_S8_MAP_TABLE_MIN elements. */
EA_COLD void ea_s8_map_request_scratch(ea_prepare_ctx *c);
#define EA_S8_MAP_TABLE_MIN 256
/* Runs `f` over the operator's input into its output. With the scratch, `f` first maps all 256 int8
 * values into a table, and every element is then one table read: the same outputs, computed once per
 * value instead of once per element. */
void ea_s8_map(const ea_model *m, const ea_op *op, ea_s8_map_fn f, const void *params);
/* static_cast<int32_t>(value) as x86 executes it (cvttsd2si): NaN and out-of-range give INT32_MIN, what
 * the TFLM oracle computes where C leaves the conversion undefined. */
int32_t ea_f32_to_i32_x86(float v);

/* LOGISTIC and TANH (int8): input offset, Q4.27 rescaling multiplier and exponent, saturation radius. */
typedef struct {
    int32_t in_zp, mult, shift, radius;
} ea_sigmoid_params;
EA_COLD ea_status ea_sigmoid_prepare_common(ea_prepare_ctx *c, ea_sigmoid_params *p);

/* SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND (ops/space_to_batch_nd.c): rank 3 or 4 as NHWC (rank 3 has
 * W = 1, as TFLM's ExtendShapeSpaceToBatch); the checks and constant block shape and paddings/crops
 * (before and after per spatial dimension). */
ea_dims4 ea_dims4_nhwc(const ea_tensor *t);
EA_COLD ea_status ea_space_batch_prepare(ea_prepare_ctx *c, int32_t block[2], int32_t before[2], int32_t after[2]);

#endif /* EA_OPS_H */
