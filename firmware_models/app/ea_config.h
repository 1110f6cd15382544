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
/* Tensor arena (the runtime's ea_model_arena_needed, plus its 16-byte alignment slack). */
#ifndef EA_ARENA_SIZE
#define EA_ARENA_SIZE (256 * 1024)
#endif
/* Reply frames: INFO's JSON or an INFER reply, whichever is larger. */
#define EA_INFO_BYTES 2048
#define EA_INFER_FRAME_BYTES (EA_FRAME_OVERHEAD + 16 + EA_OUTPUT_BYTES)
#define EA_REPLY_BYTES (EA_INFER_FRAME_BYTES > EA_INFO_BYTES ? EA_INFER_FRAME_BYTES : EA_INFO_BYTES)
/* Reply cache (INFO reply_cache): 8 slots of the larger of an INFER and an ERROR reply. */
#define EA_CACHE_SLOT_MAX (EA_INFER_FRAME_BYTES > 212 ? EA_INFER_FRAME_BYTES : 212)
#define EA_CACHE_BYTES (8 * ((EA_CACHE_SLOT_MAX + 3) & ~3))

#endif
