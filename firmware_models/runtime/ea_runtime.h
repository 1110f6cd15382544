/* edgeattack portable int8 inference runtime: public API.
 *
 * Runs a TFLite flatbuffer (.tflite bytes, as a TFLM build would use them) with plain C11 kernels that
 * are bit-exact with TFLM's reference kernels. No malloc: the caller provides the model struct (fixed
 * maximum sizes below, so it can be static) and a tensor arena; everything is planned at init.
 * Every offset read from the flatbuffer is validated: a corrupt model gives EA_ERR_MODEL and a message
 * naming the field, never a fault.
 */
#ifndef EA_RUNTIME_H
#define EA_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Capacity limits; a build may override them (-DEA_MAX_TENSORS=...), consistently for every file. The
 * tables themselves are in the arena: these bound a model's size, and ea_model_arena_needed's own
 * static tables (a host-side helper). */
#ifndef EA_MAX_TENSORS
#define EA_MAX_TENSORS 256
#endif
#ifndef EA_MAX_OPS
#define EA_MAX_OPS 128
#endif
#ifndef EA_MAX_OPCODES
#define EA_MAX_OPCODES 64
#endif
#define EA_MAX_DIMS 6
/* Most inputs of one operator (TFLM's CONCATENATION takes up to 10). */
#define EA_MAX_OP_INPUTS 16
#define EA_ERROR_LEN 160

typedef enum { EA_OK = 0, EA_ERR_MODEL = 7, EA_ERR_RUNTIME = 8 } ea_status; /* = docs/protocol.md ERROR codes */

/* Protocol dtype codes (docs/protocol.md). */
enum { EA_DTYPE_INT8 = 1, EA_DTYPE_UINT8 = 2, EA_DTYPE_INT16 = 3, EA_DTYPE_INT32 = 4, EA_DTYPE_FLOAT32 = 5 };

typedef struct {
    int32_t dims[6];
    int32_t ndim;
    uint8_t dtype;      /* protocol dtype code: 1 int8, 2 uint8, 3 int16, 4 int32, 5 float32 */
    float scale;        /* 0 for a float tensor */
    int32_t zero_point;
    uint32_t bytes;
} ea_tensor_info;

/* One tensor of the (single) subgraph. */
typedef struct {
    int32_t dims[EA_MAX_DIMS];
    uint8_t ndim;
    uint8_t type;            /* TFLite TensorType */
    uint8_t is_const;        /* data lives in the flatbuffer */
    uint8_t producer_set;    /* written by an op (or the model input) */
    float scale;             /* first scale of the quantization parameters (0 if none) */
    int32_t zero_point;
    uint16_t nscales;        /* number of scales (> 1: per-channel; the loader refuses more than 65535) */
    int8_t qdim;             /* quantized dimension (-1 when the model's is outside 0..126) */
    uint32_t scales_pos;     /* flatbuffer position of the scale floats */
    uint32_t count;          /* elements */
    uint32_t bytes;
    /* Where the data is: a constant's position in the flatbuffer (model data), a computed tensor's offset
     * in the arena (ea_cdata / ea_vdata in ea_ops.h). An offset, not a pointer: the record is the same 60
     * bytes on the host, whose planner sizes the firmware's arena, as on a 32-bit target. */
    uint32_t offset;
    int16_t first_op, last_op;
} ea_tensor;
/* The tables are in the arena: every byte here is arena, per tensor and per operator. */
#ifndef __cplusplus
_Static_assert(sizeof(ea_tensor) == 60, "ea_tensor changed size: update docs/firmware.md");
#endif

/* Room for an operator's prepared parameters: its kernel's own struct (ops/<op>.c, EA_OP_PARAMS in
 * ea_ops.h), in words. An operator whose struct is larger fails to compile; raise this then, knowing
 * that every operator slot of the model grows by as much (11 words keep ea_op at 64 bytes on a 32-bit
 * target). */
#define EA_OP_PARAM_WORDS 11

/* One operator: its row in the operator table, its tensors and its prepared parameters. */
typedef struct {
    uint8_t reg;             /* row of the operator table (ea_ops.c) */
    uint8_t builtin;         /* TFLite builtin code (for messages) */
    int16_t in[3];           /* tensor indices, -1 when absent */
    int16_t out;
    uint8_t channels;        /* EA_CHAN_* flags (ea_ops.h): per-output-channel data at arena + chan_offset */
    uint8_t n_in;            /* inputs in the flatbuffer (those past in[2] are read from it again) */
    uint32_t chan_offset;
    uint32_t scratch_offset; /* the kernel's scratch buffer in the arena; EA_NO_SCRATCH when none */
    int32_t params[EA_OP_PARAM_WORDS];
} ea_op;
#ifndef __cplusplus
_Static_assert(sizeof(ea_op) == 64, "ea_op changed size: update docs/firmware.md");
#endif
#define EA_NO_SCRATCH UINT32_MAX

typedef struct ea_model {
    const uint8_t *data;
    uint32_t len;
    uint8_t *arena;          /* 16-byte aligned start inside the caller's arena */
    uint32_t arena_needed;   /* activations + persistent parameters */
    uint32_t activation_bytes;
    uint32_t n_tensors, n_ops;
    int32_t input, output;
    uint8_t ready;
    ea_tensor_info in_info, out_info;
    /* The tensor and operator tables live at the start of the arena (as TFLM keeps its tensors in its
     * arena), so the model struct is the same few hundred bytes for any model: n_tensors records, then
     * n_ops, each table 16-byte aligned, counted in arena_needed. */
    ea_tensor *tensors;
    ea_op *ops;
    uint32_t table_bytes;
    char error[EA_ERROR_LEN];
} ea_model;

/* Parses and validates the model, plans the arena (the tensor and operator tables first, then the
 * activations, then the operators' persistent data) and prepares every operator. `data` must stay valid
 * while the model is used (constants are read from it). The input tensor is never overwritten by an
 * inference, so invoking again on the same input gives the same output. The arena need not be aligned: the runtime
 * aligns it to 16 bytes (pass up to 15 bytes more than ea_model_arena_needed() if it is not). */
ea_status ea_model_init(ea_model *m, const uint8_t *data, uint32_t len, uint8_t *arena, uint32_t arena_len);
/* A model prepared on the host (firmware builds: the host harness's `prepare` command writes it as C,
 * firmware_models/host/ea_prepared_c.c): the tensor and operator tables that ea_model_init would build,
 * kept in flash, with every arena offset already moved down past where the tables would have been. The
 * firmware then links neither the flatbuffer parser, the planner nor any operator's prepare. */
typedef struct {
    const ea_tensor *tensors;
    const ea_op *ops;
    uint32_t n_tensors, n_ops;
    int32_t input, output;
    uint32_t arena_needed;   /* activations + persistent parameters (no tables) */
    uint32_t activation_bytes;
    const ea_tensor_info *in_info, *out_info;
} ea_prepared;
/* The prepared model of a firmware build (its generated model_prepared.c, when built with EA_PREPARED). */
extern const ea_prepared ea_model_prepared;
/* Uses `p` (which must stay valid: its tables are read, never written) with the model bytes it was
 * prepared from, and computes the per-channel parameters into the arena (aligned like init's). */
ea_status ea_model_restore(ea_model *m, const ea_prepared *p, const uint8_t *data, uint32_t len, uint8_t *arena,
                           uint32_t arena_len);
/* Bytes of arena the model needs (same parser and planner as init); 0 on error. Not reentrant: it uses
 * one static ea_model and static tables for EA_MAX_TENSORS / EA_MAX_OPS (a host-side helper: a
 * firmware that does not call it does not link them). */
uint32_t ea_model_arena_needed(const uint8_t *data, uint32_t len);
const ea_tensor_info *ea_model_input_info(const ea_model *m);
const ea_tensor_info *ea_model_output_info(const ea_model *m);
uint8_t *ea_model_input(ea_model *m);
const uint8_t *ea_model_output(const ea_model *m);
ea_status ea_model_invoke(ea_model *m);
/* The last error ("" when none), e.g. "unsupported operator SQUEEZE (builtin 43) at op 3". */
const char *ea_model_error(const ea_model *m);

#ifdef __cplusplus
}
#endif

#endif /* EA_RUNTIME_H */
