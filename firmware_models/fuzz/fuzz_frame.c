/* libFuzzer target: the device side of the wire protocol (frame receiver + protocol engine) fed
 * arbitrary bytes, as a UART would deliver them after noise, truncation or a hostile host.
 *
 * Checks beyond the sanitizers: the replies written form whole COBS frames (each non-empty, no
 * longer than an encoded reply buffer, ended by 0x00, none left half-written when the input ends),
 * and the inference counter never exceeds what the valid requests that could run the model asked
 * for (INFER, SLOT_INFER, PATCH: each at most its repeat count). A second frame receiver, fed the
 * same bytes, finds those requests. (That replays never run again is checked exactly by
 * tests/test_fw_v2_proto.py against the Python reference.) The engine
 * has 4 input slots (protocol v2). Buffers are exact-size heap blocks so ASan sees any overrun. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ea_proto.h"

#define MAX_PAYLOAD 256u
#define INPUT_BYTES 16u
#define OUTPUT_BYTES 3u
#define REPLY_CAP 1024u
#define SLOTS 4u

static ea_proto g_proto;
static uint64_t g_ticks;
static size_t g_frame_len; /* bytes of the reply frame being written, before its delimiter */

static void on_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == 0x00) {
            if (g_frame_len == 0) {
                abort(); /* an empty frame: the device never sends one */
            }
            g_frame_len = 0;
        } else if (++g_frame_len > REPLY_CAP + REPLY_CAP / 254u + 1u) {
            abort(); /* longer than any reply the buffer can hold, COBS-encoded */
        }
    }
}

static uint64_t ticks(void *ctx)
{
    (void)ctx;
    return g_ticks += 100u;
}

static int invoke(void *ctx, const uint8_t *input, uint8_t *output, char *msg, size_t cap)
{
    (void)ctx;
    (void)msg;
    (void)cap;
    unsigned sum = 0;
    for (unsigned i = 0; i < INPUT_BYTES; i++) {
        sum += input[i];
    }
    for (unsigned k = 0; k < OUTPUT_BYTES; k++) {
        output[k] = (uint8_t)(sum + k);
    }
    return 0;
}

/* The most inferences one valid frame may run: its repeat count (0 means 1) for the requests that
 * run the model, 0 for the others. */
static uint64_t max_runs(const ea_frame *f)
{
    if (f->oversize) {
        return 0;
    }
    uint32_t repeat;
    if (f->type == EA_MSG_INFER && f->len == 4u) {
        repeat = ea_get_u16(f->payload);
    } else if ((f->type == EA_MSG_SLOT_INFER || f->type == EA_MSG_PATCH) && f->version == 2u && f->len >= 4u) {
        repeat = ea_get_u16(f->payload + 2);
    } else {
        return 0;
    }
    return repeat == 0u ? 1u : repeat;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *rx = malloc(MAX_PAYLOAD + EA_FRAME_OVERHEAD);
    uint8_t *reply = malloc(REPLY_CAP);
    uint8_t *cache = malloc(4u * 64u);
    uint8_t *input = malloc(INPUT_BYTES * SLOTS);
    uint8_t *shadow = malloc(MAX_PAYLOAD + EA_FRAME_OVERHEAD);
    uint8_t *output = malloc(OUTPUT_BYTES);
    ea_proto_model model = {
        .sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        .input = {.dtype = EA_PROTO_DTYPE_INT8, .rank = 4, .dims = {1, 4, 4, 1}, .scale = 0.5f,
                  .zero_point = -1, .bytes = INPUT_BYTES},
        .output = {.dtype = EA_PROTO_DTYPE_INT8, .rank = 2, .dims = {1, 3}, .scale = 0.25f,
                   .zero_point = 0, .bytes = OUTPUT_BYTES},
        .invoke = invoke,
    };
    ea_proto_io io = {.board = "fuzz", .runtime = "edgeattack-c", .tick_hz = 1000000u,
                      .write = on_write, .ticks = ticks};
    ea_proto_buffers mem = {rx, MAX_PAYLOAD + EA_FRAME_OVERHEAD, reply, REPLY_CAP, cache, 4u * 64u,
                            input, INPUT_BYTES * SLOTS, output, OUTPUT_BYTES, SLOTS};
    if (ea_proto_init(&g_proto, &io, &model, &mem, MAX_PAYLOAD, 2) != 0) {
        abort();
    }
    ea_rx shadow_rx;
    ea_rx_init(&shadow_rx, shadow, MAX_PAYLOAD + EA_FRAME_OVERHEAD);
    g_frame_len = 0;
    uint64_t infers = 0; /* an upper bound on the inferences the requests asked for */
    for (size_t i = 0; i < size; i++) {
        ea_frame f;
        if (ea_rx_push(&shadow_rx, data[i], &f) == EA_RX_FRAME) {
            infers += max_runs(&f);
        }
        ea_proto_feed(&g_proto, data[i]);
    }
    if (g_frame_len != 0) {
        abort(); /* a reply left half-written */
    }
    if (g_proto.inferences > infers) {
        abort(); /* an inference ran that no INFER request asked for */
    }
    free(rx);
    free(reply);
    free(cache);
    free(input);
    free(shadow);
    free(output);
    return 0;
}
