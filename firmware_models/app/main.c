/* The firmware: the exported model, the edgeattack C runtime and the wire protocol over the board's
 * UART. Bytes arrive by interrupt into the board's ring buffer; the main loop feeds them to the
 * protocol, which answers before taking the next byte, so while an inference runs the next requests
 * wait in the ring (pipelining). */
#include <string.h>

#include "ea_board.h"
#include "ea_config.h"
#include "ea_proto.h"
#include "ea_runtime.h"
#include "model_data.h"

#ifndef EA_BOARD_NAME
#define EA_BOARD_NAME "unknown"
#endif

static ea_model g_model;
static _Alignas(16) uint8_t g_arena[EA_ARENA_SIZE];
static uint8_t g_rx[EA_MAX_PAYLOAD + EA_FRAME_OVERHEAD];
/* Reply buffer and reply cache in one block: INFO's frame spans both (ea_proto.c, info_frame). */
static _Alignas(4) uint8_t g_replies[((EA_REPLY_BYTES + 3) & ~3) + EA_CACHE_BYTES];
#define REPLY_CAP ((EA_REPLY_BYTES + 3) & ~3)
/* No input / output buffers of their own: LOAD assembles the input straight into the model's input
 * tensor (the runtime never overwrites it, so repeats see it intact) and INFER replies from the
 * output tensor. This one word stands in for both when the model failed to load. */
static _Alignas(4) uint8_t g_no_model[4];
static ea_proto g_proto;

const char *ea_board_name(void) { return EA_BOARD_NAME; }

static void io_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    ea_board_uart_write(data, len);
}

static uint32_t io_stack_used(void *ctx)
{
    (void)ctx;
    return ea_board_stack_used();
}

static uint64_t io_ticks(void *ctx)
{
    (void)ctx;
    return ea_board_ticks_now();
}

static void io_timestamp(void *ctx, int level)
{
    (void)ctx;
    ea_board_timestamp_pin(level);
}

static uint32_t io_overruns(void *ctx)
{
    (void)ctx;
    return ea_board_rx_overruns();
}

/* One inference. `input` and `output` are normally the model's own tensors (main() hands them to the
 * protocol as its buffers); a copy is made only when they are not. */
static int model_invoke(void *ctx, const uint8_t *input, uint8_t *output, char *msg, size_t msg_cap)
{
    ea_model *m = ctx;
    const ea_tensor_info *in = ea_model_input_info(m);
    const ea_tensor_info *out = ea_model_output_info(m);
    if (input != ea_model_input(m)) {
        memcpy(ea_model_input(m), input, in->bytes);
    }
    if (ea_model_invoke(m) != EA_OK) {
        const char *err = ea_model_error(m);
        size_t n = strlen(err);
        if (n >= msg_cap) {
            n = msg_cap - 1u;
        }
        memcpy(msg, err, n);
        msg[n] = '\0';
        return -1;
    }
    if (output != ea_model_output(m)) {
        memcpy(output, ea_model_output(m), out->bytes);
    }
    return 0;
}

static void copy_tensor(ea_proto_tensor *dst, const ea_tensor_info *src)
{
    dst->dtype = src->dtype;
    int32_t rank = src->ndim < 0 ? 0 : src->ndim;
    dst->rank = (uint8_t)(rank > (int32_t)EA_MAX_RANK ? (int32_t)EA_MAX_RANK : rank);
    for (uint32_t i = 0; i < dst->rank; i++) {
        dst->dims[i] = src->dims[i];
    }
    dst->scale = src->scale;
    dst->zero_point = src->zero_point;
    dst->bytes = src->bytes;
}

#ifdef EA_DEBUG_FAULT
/* Test builds: an undefined instruction escalates to HardFault (UsageFault is not enabled), which
 * the board's handler reports with CFSR / HFSR / PC before exiting. */
__attribute__((noinline)) void ea_debug_fault(void)
{
    __asm volatile("udf #0x42");
    for (;;) {
    }
}
#endif

int main(void)
{
    ea_board_init();
#if defined(EA_DEBUG_FAULT) && EA_DEBUG_FAULT == 2
    ea_debug_fault(); /* fault before answering anything: the launcher must report it */
#elif defined(EA_DEBUG_FAULT) && EA_DEBUG_FAULT == 3
    for (;;) {
        /* hang before answering anything: the launcher's INFO timeout must report it */
    }
#endif

    ea_proto_model pm;
    memset(&pm, 0, sizeof pm);
    pm.sha256 = ea_model_sha256;
    pm.invoke = model_invoke;
    pm.ctx = &g_model;
    if (ea_model_init(&g_model, ea_model_data, ea_model_data_len, g_arena, sizeof g_arena) == EA_OK) {
        copy_tensor(&pm.input, ea_model_input_info(&g_model));
        copy_tensor(&pm.output, ea_model_output_info(&g_model));
        pm.arena_used = g_model.arena_needed;
    } else {
        pm.error = ea_model_error(&g_model);
    }

    ea_proto_io io = {
        .board = ea_board_name(),
        .runtime = "edgeattack-c",
        .tick_hz = ea_board_tick_hz(),
        .write = io_write,
        .ticks = io_ticks,
        .timestamp = io_timestamp,
        .overruns = io_overruns,
        .stack_used = io_stack_used,
        .stack_bytes = ea_board_stack_bytes(),
        .ctx = NULL,
    };
    ea_proto_buffers mem = {
        .rx = g_rx, .rx_cap = sizeof g_rx,
        .reply = g_replies, .reply_cap = REPLY_CAP,
        .cache = g_replies + REPLY_CAP, .cache_cap = sizeof g_replies - REPLY_CAP,
        .input = g_no_model, .input_cap = sizeof g_no_model,
        .output = g_no_model, .output_cap = sizeof g_no_model,
    };
    if (pm.error == NULL) {
        mem.input = ea_model_input(&g_model);
        mem.input_cap = pm.input.bytes;
        /* the protocol only reads the output after an INFER, so the model's tensor serves */
        mem.output = (uint8_t *)(uintptr_t)ea_model_output(&g_model);
        mem.output_cap = pm.output.bytes;
    }
    if (ea_proto_init(&g_proto, &io, &pm, &mem, EA_MAX_PAYLOAD, EA_RX_BUFFERS) != 0) {
        ea_board_exit(2); /* a build configuration error, caught by the launcher */
    }

    for (;;) {
        int c;
        while ((c = ea_board_uart_getc()) >= 0) {
            ea_proto_feed(&g_proto, (uint8_t)c);
            if (ea_proto_reset_requested(&g_proto)) {
                ea_board_reset();
            }
        }
        ea_board_wait_for_rx();
    }
}
