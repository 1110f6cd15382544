/* libFuzzer target for the runtime's flatbuffer reader and model loader (and, for small models that
 * load, one inference): any input must give EA_OK or an error message, never a crash, an out-of-bounds
 * access, undefined behaviour or a hang. Built with clang -fsanitize=fuzzer,address,undefined. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ea_runtime.h"

static ea_model model;

/* Rough work estimate of one inference, so that the fuzzer does not spend its time in huge (valid)
 * convolutions: the loader bounds every tensor, not the total compute. */
static uint64_t work_estimate(const ea_model *m) {
    uint64_t w = 0;
    for (uint32_t i = 0; i < m->n_ops; i++) {
        const ea_op *op = &m->ops[i];
        const ea_tensor *out = &m->tensors[op->out];
        const ea_tensor *in = op->in[0] >= 0 ? &m->tensors[op->in[0]] : out;
        uint64_t per = 1;
        if (op->in[1] >= 0 && (op->builtin == 3 || op->builtin == 4 || op->builtin == 9)) {
            const ea_tensor *f = &m->tensors[op->in[1]];
            per = f->count;
        } else if (op->builtin == 1 || op->builtin == 17 || op->builtin == 40) {
            per = in->count;
        } else if (op->builtin == 67 && op->in[1] >= 0) { /* TRANSPOSE_CONV: input x filter scatter */
            w += (uint64_t)in->count * m->tensors[op->in[1]].count;
        }
        w += (uint64_t)out->count * per + in->count;
    }
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 0xffffffu) return 0;
    const uint32_t len = (uint32_t)size;
    const uint32_t need = ea_model_arena_needed(data, len);
    if (need == 0 || need > (1u << 20)) {
        /* Still exercise init's own error path with a small arena. */
        uint8_t small[64];
        (void)ea_model_init(&model, data, len, small, sizeof small);
        if (ea_model_error(&model)[0] == '\0' && need == 0) abort(); /* an error must say why */
        return 0;
    }
    uint8_t *arena = malloc(need);
    if (!arena) return 0;
    if (ea_model_init(&model, data, len, arena, need) == EA_OK) {
        if (work_estimate(&model) < 2000000u) {
            uint8_t *x = ea_model_input(&model);
            const ea_tensor_info *ti = ea_model_input_info(&model);
            for (uint32_t i = 0; i < ti->bytes; i++) x[i] = (uint8_t)(i * 37u + 11u);
            if (ea_model_invoke(&model) != EA_OK && ea_model_error(&model)[0] == '\0') abort();
        }
    } else if (ea_model_error(&model)[0] == '\0') {
        abort();
    }
    free(arena);
    return 0;
}
