/* Firmware sizes. The host build (edgeattack.firmware.build) passes the model-dependent ones with -D;
 * the defaults below are generous so a plain `make` works for any small model. */
#ifndef EA_CONFIG_H
#define EA_CONFIG_H

#include "ea_cobs.h"
#include "ea_frame.h"

/* Largest request payload accepted (INFO max_payload). 3 KiB images fit one LOAD. */
#ifndef EA_MAX_PAYLOAD
#define EA_MAX_PAYLOAD 4096
#endif
/* Maximum-size request frames the receive ring holds while the firmware is busy (INFO rx_buffers). */
#ifndef EA_RX_BUFFERS
#define EA_RX_BUFFERS 2
#endif
/* The receive ring: EA_RX_BUFFERS encoded maximum-size frames with their delimiters. */
#define EA_RX_FRAME_WIRE (EA_COBS_MAX_ENCODED(EA_MAX_PAYLOAD + EA_FRAME_OVERHEAD) + 1)
#define EA_RX_RING_BYTES (EA_RX_BUFFERS * EA_RX_FRAME_WIRE)

/* Model input and output sizes the firmware's own buffers take. */
#ifndef EA_INPUT_BYTES
#define EA_INPUT_BYTES 16384
#endif
#ifndef EA_OUTPUT_BYTES
#define EA_OUTPUT_BYTES 1024
#endif
/* Input slots (protocol v2, INFO slots): EA_INPUT_SLOTS buffers of EA_INPUT_BYTES each, where the
 * host's LOADs and PATCHes land; an inference copies its slot into the model's input tensor. The host
 * build (edgeattack.firmware.build.input_slots_for) picks the number from the board's RAM: 4 where they
 * fit, else fewer, down to 1. With 1 the model's own input tensor is the slot: no RAM of its own. */
#ifndef EA_INPUT_SLOTS
#define EA_INPUT_SLOTS 4
#endif
#if EA_INPUT_SLOTS < 1 || EA_INPUT_SLOTS > 8
#error "EA_INPUT_SLOTS must be 1..8 (ea_proto.h EA_SLOTS_MAX)"
#endif
/* Tensor arena (the runtime's ea_model_arena_needed, plus its 16-byte alignment slack). */
#ifndef EA_ARENA_SIZE
#define EA_ARENA_SIZE (256 * 1024)
#endif
/* Reply frames: a reply with an output (a PATCH-with-INFER or SLOT_INFER reply: slot header 8 + INFER
 * reply 16 + the output; ea_proto.h EA_INFER_FRAME_SIZE) or an ERROR (EA_ERROR_FRAME_MAX, 212 bytes),
 * whichever is larger. INFO's JSON is built in the reply cache's memory instead (INFO empties the
 * cache; ea_proto.c). */
#define EA_INFER_FRAME_BYTES (EA_FRAME_OVERHEAD + 8 + 16 + EA_OUTPUT_BYTES)
#define EA_ERROR_FRAME_BYTES 212
#define EA_REPLY_BYTES (EA_INFER_FRAME_BYTES > EA_ERROR_FRAME_BYTES ? EA_INFER_FRAME_BYTES : EA_ERROR_FRAME_BYTES)
/* Reply cache (INFO reply_cache): EA_REPLY_CACHE slots of the larger of an INFER and an ERROR reply.
 * 6 keeps a pipelining window of 6 requests, more than the 2 receive buffers can hold in flight.
 * main.c puts the cache right after the reply buffer, and INFO's frame uses both (INFO empties the
 * cache): together they hold at least EA_INFO_BYTES, the largest INFO (measured: about 1000 bytes
 * with a full log; worst case with 20-digit counters about 1250, plus 35 for protocol v2's
 * "protocols" and "slots"). */
#ifndef EA_REPLY_CACHE
#define EA_REPLY_CACHE 6
#endif
#define EA_INFO_BYTES 1344
#define EA_CACHE_SLOT_MAX ((EA_REPLY_BYTES + 3) & ~3)
#define EA_CACHE_RING (EA_REPLY_CACHE * EA_CACHE_SLOT_MAX)
#define EA_CACHE_BYTES (EA_REPLY_BYTES + EA_CACHE_RING >= EA_INFO_BYTES ? EA_CACHE_RING : EA_INFO_BYTES - EA_REPLY_BYTES)

#endif
