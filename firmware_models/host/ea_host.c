/* Host harness for the edgeattack C runtime (a test tool, not firmware: it may use stdio and malloc).
 *
 *   ea_host plan MODEL.tflite        prints JSON: arena bytes, input and output tensor info
 *   ea_host run MODEL.tflite [ARENA [OFFSET]]
 *                                    reads N concatenated raw input tensors from stdin until EOF and
 *                                    writes the N raw output tensors to stdout; ARENA overrides the
 *                                    arena size (default: exactly what the model needs), OFFSET starts
 *                                    the arena that many bytes into its allocation (misalignment tests)
 *   ea_host prepare MODEL.tflite OUT.c [all]
 *                                    writes the initialized model as C for a firmware build (ea_prepared,
 *                                    ea_prepared_c.c), after checking on three inputs that the prepared
 *                                    tables compute what the loaded model does; "all" for a firmware
 *                                    linking every operator. Prints JSON: arena and table bytes.
 * Errors: one line on stderr ("ea_host: <message>"), exit code 2 for a bad model, 3 for a failed run,
 * 1 for usage/IO errors. The arena is malloc'ed at exactly the planned size so that ASan sees any
 * access past it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ea_prepared_c.h"
#include "ea_runtime.h"

static ea_model model; /* large: keep it off the stack */

static int die(int code, const char *msg, const char *detail) {
    fprintf(stderr, "ea_host: %s%s\n", msg, detail ? detail : "");
    return code;
}

static uint8_t *read_file(const char *path, uint32_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        const size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    if (n > 0xffffffffu) {
        free(buf);
        return NULL;
    }
    /* An exact-size copy, so that ASan flags any read past the model's last byte. */
    uint8_t *exact = malloc(n ? n : 1);
    if (exact) memcpy(exact, buf, n);
    free(buf);
    *len = (uint32_t)n;
    return exact;
}

static const char *dtype_name(uint8_t d) {
    switch (d) {
        case 1: return "int8";
        case 2: return "uint8";
        case 3: return "int16";
        case 4: return "int32";
        case 5: return "float32";
        default: return "unknown";
    }
}

static void print_info(const char *key, const ea_tensor_info *ti) {
    printf("  \"%s\": {\"shape\": [", key);
    for (int d = 0; d < ti->ndim; d++) printf("%s%d", d ? ", " : "", (int)ti->dims[d]);
    printf("], \"dtype\": \"%s\", \"dtype_code\": %u, \"scale\": %.9g, \"zero_point\": %d, \"bytes\": %u}",
           dtype_name(ti->dtype), (unsigned)ti->dtype, (double)ti->scale, (int)ti->zero_point, (unsigned)ti->bytes);
}

int main(int argc, char **argv) {
    const int prepare = argc >= 2 && strcmp(argv[1], "prepare") == 0;
    if (prepare ? argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "all") != 0)
                : argc < 3 || argc > 5 || (strcmp(argv[1], "plan") != 0 && strcmp(argv[1], "run") != 0))
        return die(1, "usage: ea_host plan|run MODEL.tflite [ARENA_BYTES [OFFSET]] | prepare MODEL.tflite OUT.c [all]", NULL);
    uint32_t len = 0;
    uint8_t *data = read_file(argv[2], &len);
    if (!data) return die(1, "cannot read model file ", argv[2]);

    const uint32_t need = ea_model_arena_needed(data, len);
    /* need 0: the runtime rejects the model. An arena that holds the largest tables lets init say why
     * (the tables come first in the arena; with no room for them init could only say that). */
    const uint32_t arena_len = argc >= 4 && !prepare ? (uint32_t)strtoul(argv[3], NULL, 10) : need ? need : 1u << 20;
    const uint32_t offset = argc == 5 && !prepare ? (uint32_t)strtoul(argv[4], NULL, 10) % 64u : 0u;
    uint8_t *arena = malloc((size_t)arena_len + offset ? (size_t)arena_len + offset : 1u); /* exact: ASan sees overruns */
    if (!arena) {
        free(data);
        return die(1, "out of memory", NULL);
    }
    /* malloc returns 16-byte aligned memory on glibc x86-64, so the arena is used from its first byte. */
    const ea_status st = ea_model_init(&model, data, len, arena + offset, arena_len);
    if (st != EA_OK) {
        fprintf(stderr, "ea_host: %s\n", ea_model_error(&model));
        free(arena);
        free(data);
        return 2;
    }
    const ea_tensor_info *in = ea_model_input_info(&model), *out = ea_model_output_info(&model);
    int rc = 0;
    if (prepare) {
        /* at least one record each, so that no allocation is empty */
        ea_tensor *tensors = malloc((model.n_tensors + 1u) * sizeof *tensors);
        ea_op *ops = malloc((model.n_ops + 1u) * sizeof *ops);
        ea_prepared p;
        char why[200];
        uint8_t *second = NULL;
        if (!tensors || !ops) {
            rc = die(1, "out of memory", NULL);
        } else {
            ea_prepare_tables(&model, tensors, ops, &p);
            second = malloc(p.arena_needed ? p.arena_needed : 1u); /* exact: ASan sees overruns */
            if (!second) {
                rc = die(1, "out of memory", NULL);
            } else if (ea_check_prepared(&model, &p, second, p.arena_needed, why, sizeof why) != 0) {
                rc = die(3, why, NULL); /* nothing is written */
            } else {
                FILE *f = fopen(argv[3], "w");
                int bad = !f;
                if (f) {
                    bad = ea_write_prepared_c(f, &model, &p, argc == 4) != 0;
                    bad |= fclose(f) != 0;
                }
                if (bad) {
                    remove(argv[3]); /* nothing half-written */
                    rc = die(1, "cannot write ", argv[3]);
                } else {
                    printf("{\"arena_bytes\": %u, \"table_bytes\": %u}\n", (unsigned)p.arena_needed,
                           (unsigned)model.table_bytes);
                }
            }
        }
        free(second);
        free(ops);
        free(tensors);
    } else if (strcmp(argv[1], "plan") == 0) {
        printf("{\n  \"arena_bytes\": %u,\n  \"activation_bytes\": %u,\n  \"table_bytes\": %u,\n  \"operators\": %u,\n"
               "  \"tensors\": %u,\n", (unsigned)need, (unsigned)model.activation_bytes, (unsigned)model.table_bytes,
               (unsigned)model.n_ops, (unsigned)model.n_tensors);
        print_info("input", in);
        printf(",\n");
        print_info("output", out);
        printf("\n}\n");
    } else {
        /* EA_HOST_REPEAT=n: invoke n times per sample without reloading the input (like INFER's repeat). */
        const char *rep = getenv("EA_HOST_REPEAT");
        long repeat = rep ? strtol(rep, NULL, 10) : 1;
        if (repeat < 1 || repeat > 1000) repeat = 1;
        for (;;) {
            uint8_t *x = ea_model_input(&model);
            const size_t got = fread(x, 1, in->bytes, stdin);
            if (got == 0) break;
            if (got != in->bytes) {
                rc = die(1, "stdin ended inside an input tensor (size is not a multiple of the input bytes)", NULL);
                break;
            }
            ea_status ist = EA_OK;
            for (long r = 0; r < repeat && ist == EA_OK; r++) ist = ea_model_invoke(&model);
            if (ist != EA_OK) {
                fprintf(stderr, "ea_host: %s\n", ea_model_error(&model));
                rc = 3;
                break;
            }
            if (fwrite(ea_model_output(&model), 1, out->bytes, stdout) != out->bytes) {
                rc = die(1, "cannot write to stdout", NULL);
                break;
            }
        }
        fflush(stdout);
    }
    free(arena);
    free(data);
    return rc;
}
