/* Model loading: flatbuffer parsing (TFLite schema v3), operator preparation through the operator
 * table (ea_ops.c: each operator's prepare derives its parameters exactly as TFLM's Prepare does),
 * arena planning and the invoke loop. */
#include <string.h>

#include "ea_flatbuffer.h"
#include "ea_opnames.h"
#include "ea_ops.h"
#include "ea_plan.h"
#include "ea_runtime.h"
#include "ea_strbuf.h"
#include "ea_msg.h"

/* Nothing here grows with the model: operator codes are read from the flatbuffer when needed, and each
 * kernel's scratch request waits in its operator's scratch_offset until the planner places it. */
typedef struct {
    ea_model *m;
    fb_reader r;
    fb_vector buffers;
    fb_vector codes;
    uint32_t persistent;
} loader;

static uint32_t align16(uint32_t v) { return (v + 15u) & ~15u; }

/* ---------------------------------------------------------------- parsing */

static ea_status parse_tensor(loader *L, const fb_table *tt, uint32_t index) {
    ea_model *m = L->m;
    fb_reader *r = &L->r;
    ea_tensor *t = &m->tensors[index];
    fb_vector shape, scales, zps;
    fb_table q, buf;
    int has_q = 0;
    uint32_t buf_index = 0;

    memset(t, 0, sizeof *t);
    t->first_op = -1;
    t->last_op = -1;
    if (fb_vector_field(r, tt, 0, 4, EA_MSG("Tensor.shape"), &shape) || fb_u8(r, tt, 1, 0, EA_MSG("Tensor.type"), &t->type) ||
        fb_u32(r, tt, 2, 0, EA_MSG("Tensor.buffer"), &buf_index) ||
        fb_table_field(r, tt, 4, EA_MSG("Tensor.quantization"), &q, &has_q))
        return ea_fail_at(m, EA_MSG("tensor"), index);
    if (shape.count > EA_MAX_DIMS) {
        ea_fail(m, EA_MSG("Tensor.shape: more than 6 dimensions"), "");
        return ea_fail_at(m, EA_MSG("tensor"), index);
    }
    t->ndim = (uint8_t)shape.count;
    uint64_t count = 1;
    for (uint32_t d = 0; d < shape.count; d++) {
        const int32_t v = fb_vec_i32(r, &shape, d);
        if (v < 1) {
            ea_fail(m, EA_MSG("Tensor.shape: dimension is not positive (dynamic or empty shapes are not supported)"), "");
            return ea_fail_at(m, EA_MSG("tensor"), index);
        }
        t->dims[d] = v;
        count *= (uint64_t)v;
        if (count > EA_MAX_ELEMS) {
            ea_fail(m, EA_MSG("Tensor.shape: tensor larger than 2^24 elements"), "");
            return ea_fail_at(m, EA_MSG("tensor"), index);
        }
    }
    t->count = (uint32_t)count;
    t->bytes = t->count * ea_type_size(t->type);

    if (has_q) {
        int32_t qdim = 0;
        if (fb_vector_field(r, &q, 2, 4, EA_MSG("QuantizationParameters.scale"), &scales) ||
            fb_vector_field(r, &q, 3, 8, EA_MSG("QuantizationParameters.zero_point"), &zps) ||
            fb_i32(r, &q, 6, 0, EA_MSG("QuantizationParameters.quantized_dimension"), &qdim))
            return ea_fail_at(m, EA_MSG("tensor"), index);
        if (scales.count > UINT16_MAX) {
            ea_fail(m, EA_MSG("QuantizationParameters.scale: more than 65535 scales"), "");
            return ea_fail_at(m, EA_MSG("tensor"), index);
        }
        if (scales.count > 0) {
            t->scale = fb_vec_f32(r, &scales, 0);
            t->nscales = (uint16_t)scales.count;
            t->scales_pos = scales.pos;
            t->qdim = (int8_t)(qdim >= 0 && qdim < 127 ? qdim : -1); /* -1 matches no dimension */
        }
        if (zps.count > 0) {
            const int64_t zp = fb_vec_i64(r, &zps, 0);
            if (zp < INT32_MIN || zp > INT32_MAX) {
                ea_fail(m, EA_MSG("QuantizationParameters.zero_point: out of int32 range"), "");
                return ea_fail_at(m, EA_MSG("tensor"), index);
            }
            t->zero_point = (int32_t)zp;
        }
    }

    if (buf_index >= L->buffers.count) {
        if (buf_index == 0 && L->buffers.count == 0) return EA_OK;
        ea_fail(m, EA_MSG("Tensor.buffer: index past Model.buffers"), "");
        return ea_fail_at(m, EA_MSG("tensor"), index);
    }
    if (fb_vector_table(r, &L->buffers, buf_index, EA_MSG("Model.buffers"), &buf)) return ea_fail_at(m, EA_MSG("buffer"), buf_index);
    fb_vector data;
    uint64_t ext_offset = 0;
    if (fb_vector_field(r, &buf, 0, 1, EA_MSG("Buffer.data"), &data) || fb_u64(r, &buf, 1, 0, EA_MSG("Buffer.offset"), &ext_offset))
        return ea_fail_at(m, EA_MSG("buffer"), buf_index);
    if (ext_offset > 1) {
        ea_fail(m, EA_MSG("Buffer.offset: data stored outside the flatbuffer is not supported"), "");
        return ea_fail_at(m, EA_MSG("buffer"), buf_index);
    }
    if (data.count > 0) {
        if (ea_type_size(t->type) == 0 || data.count != t->bytes) {
            ea_fail(m, EA_MSG("Buffer.data: size does not match the tensor's shape and type"), "");
            return ea_fail_at(m, EA_MSG("tensor"), index);
        }
        t->is_const = 1;
        t->offset = data.pos; /* r->buf is the model data */
    }
    return EA_OK;
}

/* The operator's builtin options: type (0 when absent) and table. */
static ea_status read_options(loader *L, const fb_table *ot, uint32_t i, uint8_t *type, fb_table *options) {
    int has_opts = 0;
    if (fb_u8(&L->r, ot, 3, 0, EA_MSG("Operator.builtin_options_type"), type) ||
        fb_table_field(&L->r, ot, 4, EA_MSG("Operator.builtin_options"), options, &has_opts))
        return ea_fail_at(L->m, EA_MSG("op"), i);
    if (!has_opts) *type = 0;
    return EA_OK;
}

/* Builtin code of operator code k (validated once by load). */
static ea_status read_opcode(loader *L, uint32_t k, int32_t *code) {
    fb_table oc;
    int8_t deprecated = 0;
    *code = 0;
    if (fb_vector_table(&L->r, &L->codes, k, EA_MSG("Model.operator_codes"), &oc) ||
        fb_i8(&L->r, &oc, 0, 0, EA_MSG("OperatorCode.deprecated_builtin_code"), &deprecated) ||
        fb_i32(&L->r, &oc, 3, 0, EA_MSG("OperatorCode.builtin_code"), code))
        return ea_fail_at(L->m, EA_MSG("operator code"), k);
    if (deprecated > *code) *code = deprecated; /* schema rule for the two code fields */
    return EA_OK;
}

static ea_status parse_operator(loader *L, const fb_table *ot, uint32_t i) {
    ea_model *m = L->m;
    fb_reader *r = &L->r;
    ea_op *op = &m->ops[i];
    uint32_t opcode_index = 0;
    fb_vector ins, outs;
    uint8_t opt_type;
    fb_table options;

    memset(op, 0, sizeof *op);
    op->in[0] = op->in[1] = op->in[2] = -1;
    op->out = -1;
    op->scratch_offset = EA_NO_SCRATCH;
    if (fb_u32(r, ot, 0, 0, EA_MSG("Operator.opcode_index"), &opcode_index) ||
        fb_vector_field(r, ot, 1, 4, EA_MSG("Operator.inputs"), &ins) || fb_vector_field(r, ot, 2, 4, EA_MSG("Operator.outputs"), &outs))
        return ea_fail_at(m, EA_MSG("op"), i);
    ea_status st = read_options(L, ot, i, &opt_type, &options);
    if (st) return st;
    if (opcode_index >= L->codes.count) {
        ea_fail(m, EA_MSG("Operator.opcode_index: past Model.operator_codes"), "");
        return ea_fail_at(m, EA_MSG("op"), i);
    }
    int32_t code;
    if ((st = read_opcode(L, opcode_index, &code))) return st;
    uint32_t reg = 0;
    while (reg < ea_op_table_len && ea_op_table[reg].builtin != code) reg++;
    if (reg == ea_op_table_len) {
        ea_strbuf t;
        ea_sb_init(&t, m->error, EA_ERROR_LEN);
        ea_sb_raw(&t, EA_MSG("unsupported operator "));
        const char *name = ea_builtin_name(code);
        if (name[0]) {
            ea_sb_raw(&t, name);
            ea_sb_raw(&t, EA_MSG(" "));
        }
        EA_SB_FMT(&t, "(builtin {}) at op {}", code, i);
        return EA_ERR_MODEL;
    }
    op->reg = (uint8_t)reg;
    op->builtin = (uint8_t)code;
    if (ins.count > EA_MAX_OP_INPUTS) return ea_op_fail(m, i, EA_MSG("more inputs than EA_MAX_OP_INPUTS: "), NULL, ins.count, 1);
    if (outs.count != 1) return ea_op_fail(m, i, EA_MSG("operators must have exactly one output"), NULL, 0, 0);
    for (uint32_t k = 0; k < ins.count; k++) {
        const int32_t ti = fb_vec_i32(r, &ins, k);
        if (ti < -1 || ti >= (int32_t)m->n_tensors) return ea_op_fail(m, i, EA_MSG("input tensor index out of range: "), NULL, ti, 1);
        if (k < 3) op->in[k] = (int16_t)ti;
    }
    /* Inputs past the third (CONCATENATION, STRIDED_SLICE, TRANSPOSE_CONV) are not kept in the operator
     * slot: data_flow and prepare read them again from the flatbuffer (ea_prepare_ctx.inputs). */
    op->n_in = (uint8_t)ins.count;
    const int32_t to = fb_vec_i32(r, &outs, 0);
    if (to < 0 || to >= (int32_t)m->n_tensors) return ea_op_fail(m, i, EA_MSG("output tensor index out of range: "), NULL, to, 1);
    op->out = (int16_t)to;
    return EA_OK;
}

/* Runs the operator's prepare (its row of the operator table) with its builtin options. */
static ea_status prepare_op(loader *L, const fb_table *ot, uint32_t i) {
    ea_prepare_ctx c = {.m = L->m, .op = &L->m->ops[i], .index = i, .r = &L->r, .persistent = L->persistent};
    ea_status st = read_options(L, ot, i, &c.options_type, &c.options);
    if (st) return st;
    if (fb_vector_field(&L->r, ot, 1, 4, EA_MSG("Operator.inputs"), &c.inputs)) return ea_fail_at(L->m, EA_MSG("op"), i);
    if ((st = ea_op_table[c.op->reg].prepare(&c))) return st;
    if (c.inputs.count > 3 && !c.all_inputs_used) return ea_op_fail(L->m, i, EA_MSG("more than 3 inputs"), NULL, 0, 0);
    L->persistent = c.persistent;
    c.op->scratch_offset = c.scratch_bytes; /* a request until load() plans it */
    return EA_OK;
}

/* ---------------------------------------------------------------- data flow */

/* Lifetimes of the non-constant tensors, and the check that each is written before it is read. */
/* Reads input k of operator i (k < its input count, validated by parse_operator). */
static int32_t op_input(loader *L, const fb_vector *ops, uint32_t i, uint32_t k) {
    const ea_op *op = &L->m->ops[i];
    if (k < 3) return op->in[k];
    fb_table ot;
    fb_vector ins;
    if (fb_vector_table(&L->r, ops, i, EA_MSG("SubGraph.operators"), &ot) || fb_vector_field(&L->r, &ot, 1, 4, EA_MSG("Operator.inputs"), &ins) ||
        k >= ins.count)
        return -1; /* cannot happen: parse_operator read the same vector */
    return fb_vec_i32(&L->r, &ins, k);
}

static ea_status data_flow(loader *L, const fb_vector *ops) {
    ea_model *m = L->m;
    ea_tensor *tin = &m->tensors[m->input];
    if (tin->is_const) return ea_fail(m, EA_MSG("model input tensor is constant"), "");
    tin->producer_set = 1;
    tin->first_op = 0;
    tin->last_op = 0;
    for (uint32_t i = 0; i < m->n_ops; i++) {
        ea_op *op = &m->ops[i];
        for (uint32_t k = 0; k < op->n_in; k++) {
            const int32_t ti = op_input(L, ops, i, k);
            if (ti < 0) continue;
            ea_tensor *t = &m->tensors[ti];
            if (t->is_const) continue;
            if (!t->producer_set) return ea_op_fail(m, i, EA_MSG("reads tensor before it is written: "), NULL, ti, 1);
            t->last_op = (int16_t)i;
        }
        ea_tensor *o = &m->tensors[op->out];
        if (o->is_const || o->producer_set) return ea_op_fail(m, i, EA_MSG("writes a constant or already written tensor: "), NULL, op->out, 1);
        o->producer_set = 1;
        o->first_op = (int16_t)i;
        o->last_op = (int16_t)i;
    }
    ea_tensor *tout = &m->tensors[m->output];
    if (!tout->producer_set || tout->is_const) return ea_fail(m, EA_MSG("model output tensor is never computed"), "");
    tout->last_op = (int16_t)m->n_ops; /* stays valid after the last operator */
    /* The input stays intact too, so that invoking again (INFER with a repeat count) sees the same input. */
    tin->last_op = (int16_t)m->n_ops;
    return EA_OK;
}

static ea_status info(ea_model *m, int32_t idx, ea_tensor_info *ti, const char *what) {
    const ea_tensor *t = &m->tensors[idx];
    memset(ti, 0, sizeof *ti);
    switch (t->type) {
        case EA_T_INT8: ti->dtype = EA_DTYPE_INT8; break;
        case EA_T_FLOAT32: ti->dtype = EA_DTYPE_FLOAT32; break;
        case EA_T_INT32: ti->dtype = EA_DTYPE_INT32; break; /* ARG_MAX's class index */
        default: return ea_fail(m, what, EA_MSG(" tensor must be int8, int32 or float32"));
    }
    ti->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) ti->dims[d] = t->dims[d];
    ti->scale = t->type == EA_T_INT8 ? t->scale : 0.0f;
    ti->zero_point = t->type == EA_T_INT8 ? t->zero_point : 0;
    ti->bytes = t->bytes;
    return EA_OK;
}

/* ---------------------------------------------------------------- loading */

/* Parses, prepares and plans. The tables go at the start of `tables` (cap bytes: the caller's aligned
 * arena); every arena offset the planner gives is then moved past them. */
static ea_status load(ea_model *m, const uint8_t *data, uint32_t len, uint8_t *tables, uint32_t cap) {
    static loader L_storage; /* kept off the stack for small firmware stacks */
    loader *L = &L_storage;
    fb_table model, sg;
    fb_vector subgraphs, tensors, ops, inputs, outputs;
    uint32_t version = 0;
    ea_status st;

    memset(L, 0, sizeof *L);
    L->m = m;
    L->r.buf = data;
    L->r.len = len;
    L->r.err = m->error;
    L->r.err_len = EA_ERROR_LEN;
    if (!data) return ea_fail(m, EA_MSG("model: no data"), "");
    if (fb_root(&L->r, "TFL3", &model) || fb_u32(&L->r, &model, 0, 0, EA_MSG("Model.version"), &version)) return EA_ERR_MODEL;
    if (version != 3) return ea_fail(m, EA_MSG("Model.version: only TFLite schema version 3 is supported"), "");
    if (fb_vector_field(&L->r, &model, 1, 4, EA_MSG("Model.operator_codes"), &L->codes) ||
        fb_vector_field(&L->r, &model, 2, 4, EA_MSG("Model.subgraphs"), &subgraphs) ||
        fb_vector_field(&L->r, &model, 4, 4, EA_MSG("Model.buffers"), &L->buffers))
        return EA_ERR_MODEL;
    if (L->codes.count > EA_MAX_OPCODES) return ea_fail(m, EA_MSG("Model.operator_codes: too many operator codes"), "");
    for (uint32_t k = 0; k < L->codes.count; k++) {
        int32_t code;
        if ((st = read_opcode(L, k, &code))) return st;
    }
    if (subgraphs.count != 1) return ea_fail(m, EA_MSG("Model.subgraphs: exactly one subgraph is supported"), "");
    if (fb_vector_table(&L->r, &subgraphs, 0, EA_MSG("Model.subgraphs"), &sg) ||
        fb_vector_field(&L->r, &sg, 0, 4, EA_MSG("SubGraph.tensors"), &tensors) ||
        fb_vector_field(&L->r, &sg, 1, 4, EA_MSG("SubGraph.inputs"), &inputs) ||
        fb_vector_field(&L->r, &sg, 2, 4, EA_MSG("SubGraph.outputs"), &outputs) ||
        fb_vector_field(&L->r, &sg, 3, 4, EA_MSG("SubGraph.operators"), &ops))
        return EA_ERR_MODEL;
    if (tensors.count > EA_MAX_TENSORS) return ea_fail(m, EA_MSG("SubGraph.tensors: more tensors than EA_MAX_TENSORS"), "");
    if (ops.count > EA_MAX_OPS) return ea_fail(m, EA_MSG("SubGraph.operators: more operators than EA_MAX_OPS"), "");
    if (ops.count == 0) return ea_fail(m, EA_MSG("SubGraph.operators: the model has no operators"), "");
    m->n_tensors = tensors.count;
    m->n_ops = ops.count;
    const uint32_t tensor_bytes = align16(tensors.count * (uint32_t)sizeof(ea_tensor));
    m->table_bytes = tensor_bytes + align16(ops.count * (uint32_t)sizeof(ea_op));
    if (!tables || cap < m->table_bytes) {
        ea_strbuf t;
        ea_sb_init(&t, m->error, EA_ERROR_LEN);
        EA_SB_FMT(&t, "arena too small: the model's tensor and operator tables alone need {} bytes (16-byte "
                      "aligned), got {}", m->table_bytes, tables ? cap : 0);
        return EA_ERR_MODEL;
    }
    m->tensors = (ea_tensor *)(void *)tables;
    m->ops = (ea_op *)(void *)(tables + tensor_bytes);
    for (uint32_t k = 0; k < tensors.count; k++) {
        fb_table tt;
        if (fb_vector_table(&L->r, &tensors, k, EA_MSG("SubGraph.tensors"), &tt)) return ea_fail_at(m, EA_MSG("tensor"), k);
        if ((st = parse_tensor(L, &tt, k))) return st;
    }
    if (inputs.count != 1 || outputs.count != 1) return ea_fail(m, EA_MSG("SubGraph.inputs/outputs: exactly one input and one output are supported"), "");
    m->input = fb_vec_i32(&L->r, &inputs, 0);
    m->output = fb_vec_i32(&L->r, &outputs, 0);
    if (m->input < 0 || m->input >= (int32_t)m->n_tensors || m->output < 0 || m->output >= (int32_t)m->n_tensors)
        return ea_fail(m, EA_MSG("SubGraph.inputs/outputs: tensor index out of range"), "");
    for (uint32_t k = 0; k < ops.count; k++) {
        fb_table ot;
        if (fb_vector_table(&L->r, &ops, k, EA_MSG("SubGraph.operators"), &ot)) return ea_fail_at(m, EA_MSG("op"), k);
        if ((st = parse_operator(L, &ot, k))) return st;
    }
    if ((st = data_flow(L, &ops))) return st;
    for (uint32_t k = 0; k < ops.count; k++) {
        fb_table ot; /* read again: keeping every operator's table would cost RAM per operator */
        if (fb_vector_table(&L->r, &ops, k, EA_MSG("SubGraph.operators"), &ot)) return ea_fail_at(m, EA_MSG("op"), k);
        if ((st = prepare_op(L, &ot, k))) return st;
    }
    if ((st = info(m, m->input, &m->in_info, EA_MSG("model input"))) || (st = info(m, m->output, &m->out_info, EA_MSG("model output"))))
        return st;

    m->activation_bytes = ea_plan_arena(m);
    for (uint32_t k = 0; k < ops.count; k++) {
        ea_op *op = &m->ops[k];
        const uint32_t request = op->scratch_offset;
        op->scratch_offset = EA_NO_SCRATCH;
        if (request && m->activation_bytes != UINT32_MAX)
            op->scratch_offset = ea_plan_scratch(m, k, request, &m->activation_bytes) + m->table_bytes;
    }
    if (m->activation_bytes == UINT32_MAX) return ea_fail(m, EA_MSG("arena: the model needs more than 2 GiB"), "");
    const uint64_t total = (uint64_t)m->table_bytes + m->activation_bytes + L->persistent;
    if (total > 0x7fffffffu) return ea_fail(m, EA_MSG("arena: the model needs more than 2 GiB"), "");
    for (uint32_t k = 0; k < ops.count; k++)
        if (m->ops[k].channels) m->ops[k].chan_offset += m->table_bytes + m->activation_bytes;
    for (uint32_t k = 0; k < tensors.count; k++)
        if (!m->tensors[k].is_const && m->tensors[k].producer_set) m->tensors[k].offset += m->table_bytes;
    m->arena_needed = (uint32_t)total;
    return EA_OK;
}

/* The per-channel multipliers and shifts, and folded biases, of the operators that reserved them, now
 * that the arena is placed: one per output channel (the output's last dimension). */
static void compute_channels(ea_model *m) {
    for (uint32_t i = 0; i < m->n_ops; i++) {
        const ea_op *op = &m->ops[i];
        if (!op->channels) continue; /* its output may be a scalar: no last dimension to read */
        const ea_tensor *out = &m->tensors[op->out];
        const uint32_t n = (uint32_t)out->dims[out->ndim - 1];
        int32_t *mult = (int32_t *)(void *)(m->arena + op->chan_offset);
        if (op->channels & EA_CHAN_MULT)
            ea_conv_multipliers(m, i, &m->tensors[op->in[0]], &m->tensors[op->in[1]], out, n, mult, mult + n);
        if (op->channels & EA_CHAN_FOLD) ea_fold_bias(m, op, (int32_t *)(uintptr_t)ea_op_folded_bias(m, op));
    }
}

ea_status ea_model_init(ea_model *m, const uint8_t *data, uint32_t len, uint8_t *arena, uint32_t arena_len) {
    if (!m) return EA_ERR_MODEL;
    memset(m, 0, sizeof *m);
    m->data = data;
    m->len = len;
    const uintptr_t base = (uintptr_t)arena;
    const uintptr_t pad = (16u - (base & 15u)) & 15u;
    const int usable = arena && arena_len >= pad;
    ea_status st = load(m, data, len, usable ? arena + pad : NULL, usable ? arena_len - (uint32_t)pad : 0);
    if (st) return st;
    if (!usable || arena_len - pad < m->arena_needed) {
        ea_strbuf t;
        ea_sb_init(&t, m->error, EA_ERROR_LEN);
        EA_SB_FMT(&t, "arena too small: the model needs {} bytes (16-byte aligned), got {}", m->arena_needed,
                  arena ? (int64_t)arena_len - (int64_t)pad : 0);
        return EA_ERR_MODEL;
    }
    m->arena = arena + pad;
    compute_channels(m);
    m->ready = 1;
    return EA_OK;
}

ea_status ea_model_restore(ea_model *m, const ea_prepared *p, const uint8_t *data, uint32_t len, uint8_t *arena,
                           uint32_t arena_len) {
    if (!m) return EA_ERR_MODEL;
    memset(m, 0, sizeof *m);
    const uintptr_t pad = (16u - ((uintptr_t)arena & 15u)) & 15u;
    if (!arena || arena_len < pad || arena_len - pad < p->arena_needed) return ea_fail(m, EA_MSG("arena too small for the prepared model"), "");
    m->data = data;
    m->len = len;
    m->arena = arena + pad;
    /* never written after preparation: the invoke path reads the tables through const pointers */
    m->tensors = (ea_tensor *)(uintptr_t)p->tensors;
    m->ops = (ea_op *)(uintptr_t)p->ops;
    m->n_tensors = p->n_tensors;
    m->n_ops = p->n_ops;
    m->input = p->input;
    m->output = p->output;
    m->arena_needed = p->arena_needed;
    m->activation_bytes = p->activation_bytes;
    m->in_info = *p->in_info;
    m->out_info = *p->out_info;
    compute_channels(m);
    m->ready = 1;
    return EA_OK;
}

uint32_t ea_model_arena_needed(const uint8_t *data, uint32_t len) {
    static ea_model scratch;
    static _Alignas(16) uint8_t tables[(EA_MAX_TENSORS * sizeof(ea_tensor) + 15u) / 16u * 16u +
                                       (EA_MAX_OPS * sizeof(ea_op) + 15u) / 16u * 16u];
    memset(&scratch, 0, sizeof scratch);
    scratch.data = data;
    scratch.len = len;
    if (load(&scratch, data, len, tables, sizeof tables)) return 0;
    return scratch.arena_needed;
}

const ea_tensor_info *ea_model_input_info(const ea_model *m) { return m && m->ready ? &m->in_info : NULL; }
const ea_tensor_info *ea_model_output_info(const ea_model *m) { return m && m->ready ? &m->out_info : NULL; }
uint8_t *ea_model_input(ea_model *m) { return m && m->ready ? ea_vdata(m, &m->tensors[m->input]) : NULL; }
const uint8_t *ea_model_output(const ea_model *m) { return m && m->ready ? ea_vdata(m, &m->tensors[m->output]) : NULL; }
const char *ea_model_error(const ea_model *m) { return m ? m->error : EA_MSG("no model"); }

/* ---------------------------------------------------------------- invoke */

ea_status ea_model_invoke(ea_model *m) {
    if (!m || !m->ready) {
        if (m) ea_fail(m, EA_MSG("invoke: the model is not initialised"), "");
        return EA_ERR_MODEL;
    }
    for (uint32_t i = 0; i < m->n_ops; i++) {
        const ea_op *op = &m->ops[i];
        const ea_status st = ea_op_table[op->reg].invoke(m, op);
        if (st) return st;
    }
    return EA_OK;
}
