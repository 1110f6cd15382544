/* The operator table: one row per TFLite builtin the runtime runs, X(BUILTIN, prepare, invoke), where
 * prepare and invoke name the functions EA_PREPARE(name) / EA_INVOKE(name) of an operator file in ops/.
 * Adding an operator is its file in ops/ plus one row here (docs/firmware_runtime.md). A firmware
 * built for one model keeps only the rows of the builtins it uses (ea_select.h): the others are not
 * even declared, so their code is not linked. */
#include "ea_builtins.h"
#include "ea_ops.h"
#include "ea_select.h"

#define EA_OPERATORS(X)                                    \
    X(ADD, add, add)                                       \
    X(AVERAGE_POOL_2D, average_pool_2d, average_pool_2d)   \
    X(CONV_2D, conv_2d, conv_2d)                           \
    X(DEPTHWISE_CONV_2D, depthwise_conv_2d, depthwise_conv_2d) \
    X(DEQUANTIZE, dequantize, dequantize)                  \
    X(FULLY_CONNECTED, fully_connected, fully_connected)   \
    X(MAX_POOL_2D, max_pool_2d, max_pool_2d)               \
    X(RESHAPE, reshape, reshape)                           \
    X(SOFTMAX, softmax, softmax)                           \
    X(PAD, pad, pad)                                       \
    X(MEAN, mean, mean)                                    \
    X(SQUEEZE, reshape, reshape)                           \
    X(PADV2, padv2, pad)                                   \
    X(EXPAND_DIMS, reshape, reshape)                       \
    X(QUANTIZE, quantize, quantize)                        \
    X(RELU, relu, relu)                                    \
    X(RELU6, relu6, relu6)                                 \
    X(LEAKY_RELU, leaky_relu, leaky_relu)                  \
    X(CONCATENATION, concatenation, concatenation)         \
    X(MUL, mul, mul)                                       \
    X(SUB, sub, sub)                                       \
    X(MAXIMUM, maximum, maximum)                           \
    X(MINIMUM, minimum, minimum)                           \
    X(LOGISTIC, logistic, logistic)                        \
    X(TANH, tanh, tanh)                                    \
    X(HARD_SWISH, hard_swish, hard_swish)                  \
    X(SPACE_TO_BATCH_ND, space_to_batch_nd, space_to_batch_nd) \
    X(BATCH_TO_SPACE_ND, batch_to_space_nd, batch_to_space_nd) \
    X(STRIDED_SLICE, strided_slice, strided_slice)         \
    X(ARG_MAX, arg_max, arg_max)                           \
    X(TRANSPOSE_CONV, transpose_conv, transpose_conv)

/* A firmware whose model the host prepared (EA_PREPARED: runtime/ea_runtime.h, ea_prepared) never
 * prepares an operator, so its rows leave prepare out and the linker drops that code. */
#ifdef EA_PREPARED
#define EA_PREPARE_REF(name) 0
#define EA_DECLARE_PREPARE(name)
#else
#define EA_PREPARE_REF(name) ea_##name##_prepare
#define EA_DECLARE_PREPARE(name) EA_PREPARE(name);
#endif
#define EA_DECLARE_OP(code, prepare, invoke) EA_IF_SELECTED(code, EA_DECLARE_PREPARE(prepare) EA_INVOKE(invoke);)
EA_OPERATORS(EA_DECLARE_OP)

#define EA_OP_ROW(code, prepare, invoke) EA_IF_SELECTED(code, {EA_BUILTIN_##code, EA_PREPARE_REF(prepare), ea_##invoke##_invoke},)
/* The last row is a sentinel no builtin code matches (a model may use none of the table's operators). */
const ea_op_registration ea_op_table[] = {EA_OPERATORS(EA_OP_ROW){-1, 0, 0}};
const uint32_t ea_op_table_len = sizeof ea_op_table / sizeof ea_op_table[0] - 1u;
