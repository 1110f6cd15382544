/* The device side of the edgeattack wire protocol, versions 1 and 2 (docs/protocol.md): frames in,
 * replies out (each in its request's version), sequence numbers and the reply cache, LOAD assembly,
 * INFER windows, RESET, INFO as JSON, and v2's input slots: SLOT_LOAD, PATCH, SLOT_INFER.
 *
 * Portable C11 without malloc: every buffer is given by the caller (ea_proto_buffers). The model
 * and the board are reached through the two tables below, so the same code runs in the firmware
 * and in the host-side unit tests. */
#ifndef EA_PROTO_H
#define EA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ea_frame.h"
#include "ea_strbuf.h" /* util/ */

enum {
    EA_MSG_INFO = 0x01,
    EA_MSG_LOAD = 0x02,
    EA_MSG_INFER = 0x03,
    EA_MSG_RESET = 0x04,
    EA_MSG_SLOT_LOAD = 0x11,   /* v2 frames only */
    EA_MSG_PATCH = 0x12,       /* v2 frames only */
    EA_MSG_SLOT_INFER = 0x13,  /* v2 frames only */
    EA_MSG_ERROR = 0x7F,
    EA_MSG_REPLY = 0x80,
    EA_MSG_DEBUG_FAULT = 0x7E, /* test builds only (io.debug_fault): the device takes a HardFault */
};

enum {
    EA_PROTO_ERR_BAD_REQUEST = 1,
    EA_PROTO_ERR_VERSION = 2,
    EA_PROTO_ERR_DTYPE = 3,
    EA_PROTO_ERR_SIZE = 4,
    EA_PROTO_ERR_OFFSET = 5,
    EA_PROTO_ERR_NOT_LOADED = 6,
    EA_PROTO_ERR_MODEL = 7,
    EA_PROTO_ERR_RUNTIME = 8,
    EA_PROTO_ERR_TOO_LARGE = 9,
    EA_PROTO_ERR_STALE = 10,   /* PATCH computed against another generation of the slot */
    EA_PROTO_ERR_SLOT = 11,    /* slot index >= INFO slots */
    EA_PROTO_ERR_NOT_SYNCED = 12, /* any request but INFO after boot, until an INFO arrives */
};

enum {
    EA_PROTO_DTYPE_INT8 = 1,
    EA_PROTO_DTYPE_UINT8 = 2,
    EA_PROTO_DTYPE_INT16 = 3,
    EA_PROTO_DTYPE_INT32 = 4,
    EA_PROTO_DTYPE_FLOAT32 = 5,
};

#define EA_MAX_ERROR_MESSAGE 200u
#define EA_LOG_EVENTS 8u
#define EA_MAX_RANK 6u
#define EA_REPLY_CACHE_MAX 8u
/* Input slots (v2) the state can track; the memory for them is the caller's (ea_proto_buffers). */
#define EA_SLOTS_MAX 8u
/* INFER reply: ticks u64, inferences u32, dtype u8, 3 reserved bytes, then the output. */
#define EA_INFER_REPLY_HEADER 16u
/* PATCH and SLOT_INFER replies start with slot u8, 3 reserved bytes, generation u32. */
#define EA_SLOT_REPLY_HEADER 8u
/* The largest reply carrying an output: a PATCH-with-INFER or SLOT_INFER reply. */
#define EA_INFER_FRAME_SIZE(out_bytes) (EA_FRAME_OVERHEAD + EA_SLOT_REPLY_HEADER + EA_INFER_REPLY_HEADER + (out_bytes))
/* Largest reply frame other than INFO and INFER: an ERROR with the longest message. */
#define EA_ERROR_FRAME_MAX (EA_FRAME_OVERHEAD + 2u + EA_MAX_ERROR_MESSAGE)

const char *ea_dtype_name(uint8_t dtype); /* "int8", ... or "unknown" */
uint32_t ea_dtype_size(uint8_t dtype);    /* bytes per element, 0 if unknown */

typedef struct {
    uint8_t dtype;               /* EA_PROTO_DTYPE_* */
    uint8_t rank;
    int32_t dims[EA_MAX_RANK];
    float scale;
    int32_t zero_point;
    uint32_t bytes;
} ea_proto_tensor;

/* The model as the protocol sees it. `error` non-NULL means it failed to load: INFO reports it
 * and LOAD / INFER answer ERROR MODEL with it. */
typedef struct {
    const char *sha256;          /* 64 hex digits of the .tflite bytes */
    const char *error;
    ea_proto_tensor input, output;
    uint32_t arena_used;         /* bytes of the tensor arena in use, 0 when unknown */
    /* Run the model once on `input` (input.bytes) writing `output` (output.bytes). Returns 0, or
     * non-zero with a message (NUL-terminated, at most msg_cap bytes) saying why it failed. */
    int (*invoke)(void *ctx, const uint8_t *input, uint8_t *output, char *msg, size_t msg_cap);
    void *ctx;
} ea_proto_model;

typedef struct {
    const char *board;           /* board name for INFO */
    const char *runtime;         /* "edgeattack-c" */
    /* The firmware's build identity (the ELF's GNU build-id), reported by INFO as "build_id" in hex so
     * the host finds the message texts of this build (util/ea_msg.h); NULL: no such field. */
    const uint8_t *build_id;
    uint32_t build_id_len;
    uint32_t tick_hz;
    void (*write)(void *ctx, const uint8_t *data, size_t len);   /* blocking */
    uint64_t (*ticks)(void *ctx);
    void (*timestamp)(void *ctx, int level);                     /* may be NULL */
    uint32_t (*overruns)(void *ctx);                             /* may be NULL */
    /* Deepest stack use since boot in bytes (high-water mark of the painted stack); may be NULL.
     * INFO reports it as stack_used, with stack_bytes, the reserved size, next to it. */
    uint32_t (*stack_used)(void *ctx);
    uint32_t stack_bytes;
    /* Test builds only (EA_DEBUG_FAULT): take a HardFault and never return; request type 0x7E calls
     * it. NULL in every other build, where 0x7E is an unknown message type like any other. */
    void (*debug_fault)(void *ctx);
    void *ctx;
} ea_proto_io;

/* Caller-owned memory. Sizes: rx >= max_payload + EA_FRAME_OVERHEAD; reply >= the largest reply
 * frame (INFO's JSON, or EA_INFER_FRAME_SIZE(output bytes)); cache >= one reply slot (reply_cache =
 * cache / slot size, at most EA_REPLY_CACHE_MAX); input >= input_slots x model input bytes (slot i
 * at input + i x input bytes; input_slots 0 means 1, at most EA_SLOTS_MAX: INFO `slots`);
 * output >= model output bytes. */
typedef struct {
    uint8_t *rx;
    size_t rx_cap;
    uint8_t *reply;
    size_t reply_cap;
    uint8_t *cache;
    size_t cache_cap;
    uint8_t *input;
    size_t input_cap;
    uint8_t *output;
    size_t output_cap;
    uint32_t input_slots;
} ea_proto_buffers;

typedef struct {
    uint8_t event;               /* 0 start, 1 end */
    uint32_t inference;
    uint64_t ticks;
} ea_log_event;

typedef struct {
    uint16_t seq;
    uint16_t len;                /* frame bytes in the slot; 0 = empty */
} ea_cache_entry;

typedef struct {
    ea_proto_io io;
    ea_proto_model model;
    ea_proto_buffers mem;
    ea_rx rx;
    uint16_t max_payload;
    uint16_t rx_buffers;
    const char *model_error;     /* model.error, or a reason found at init (buffers too small) */

    /* sequence state */
    bool synced;                 /* an INFO arrived since boot: until then only INFO is answered */
    uint32_t boot_id;            /* assigned by the host in a v2 INFO; 0 until then */
    bool have_last;
    uint16_t last_seq;
    uint8_t reply_version;       /* version of the request being answered: replies use it */
    uint32_t cache_slot_size;
    uint32_t cache_slots;        /* reported as reply_cache */
    uint32_t cache_next;         /* cache slot the next reply goes to (FIFO) */
    ea_cache_entry cache[EA_REPLY_CACHE_MAX];

    /* input slots (v1 LOAD / INFER use slot 0): LOAD assembly and generations */
    uint32_t n_slots;            /* INFO slots */
    uint32_t received[EA_SLOTS_MAX];
    uint32_t generation[EA_SLOTS_MAX];
    bool loaded[EA_SLOTS_MAX];

    /* counters since boot */
    uint32_t inferences;
    uint32_t crc_errors;
    uint32_t dropped;            /* every silently dropped frame, CRC errors included */
    uint32_t seq_gaps;           /* requests dropped because an earlier one was missing */
    ea_log_event log[EA_LOG_EVENTS];
    uint32_t log_count;          /* events ever logged; the last EA_LOG_EVENTS are kept */

    bool reset_requested;
    char msg[EA_MAX_ERROR_MESSAGE + 1u]; /* the ERROR message being built (ea_proto.c msg_start) */
    ea_strbuf msg_sb;
} ea_proto;

/* Returns 0, or -1 when a buffer is too small for the protocol itself (rx, reply, cache); buffers
 * too small for the model (input, output) mark the model failed instead, so INFO still works. */
int ea_proto_init(ea_proto *p, const ea_proto_io *io, const ea_proto_model *model,
                  const ea_proto_buffers *mem, uint16_t max_payload, uint16_t rx_buffers);

/* Feed one received byte. Replies go out through io.write before this returns. */
void ea_proto_feed(ea_proto *p, uint8_t byte);

/* Handle one already-decoded frame (ea_proto_feed calls it; tests may too). */
void ea_proto_handle(ea_proto *p, const ea_frame *f);

/* True once a RESET has been answered: the caller restarts the device. */
static inline bool ea_proto_reset_requested(const ea_proto *p) { return p->reset_requested; }

#endif
