/* Frames of docs/protocol.md: version u8, type u8, seq u16, length u16, payload, CRC-32 (all
 * little-endian), COBS-encoded and ended by 0x00.
 *
 * The receiver decodes COBS and checks the CRC byte by byte as bytes arrive, so it needs only a
 * buffer for one decoded frame of the largest accepted payload. A frame with a larger payload is
 * still checked to the end: when its CRC is good the caller learns its header (`oversize`) and can
 * answer TOO_LARGE instead of leaving the host to time out. */
#ifndef EA_FRAME_H
#define EA_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EA_PROTOCOL_VERSION 1u   /* the version every host and device speaks (INFO opens in it) */
#define EA_PROTOCOL_MAX 2u       /* the newest version this firmware answers (docs/protocol.md v2) */
#define EA_FRAME_HEADER 6u
#define EA_FRAME_CRC 4u
#define EA_FRAME_OVERHEAD (EA_FRAME_HEADER + EA_FRAME_CRC)

typedef struct {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t len;           /* payload length from the header */
    const uint8_t *payload; /* NULL when oversize */
    bool oversize;          /* payload larger than the receiver's buffer (CRC was good) */
} ea_frame;

typedef enum {
    EA_RX_PENDING = 0,  /* byte consumed, no frame ended */
    EA_RX_FRAME,        /* a valid frame (maybe oversize) is in *out */
    EA_RX_EMPTY,        /* a lone delimiter: ignored, not counted (hosts send one to flush) */
    EA_RX_DROP_COBS,    /* not valid COBS */
    EA_RX_DROP_SHORT,   /* fewer than 10 bytes */
    EA_RX_DROP_LENGTH,  /* length field disagrees with the frame's size */
    EA_RX_DROP_CRC,     /* CRC mismatch */
} ea_rx_status;

typedef struct {
    uint8_t *buf;
    size_t cap;         /* decoded bytes the buffer holds: max payload + EA_FRAME_OVERHEAD */
    size_t n;           /* decoded bytes of the frame in progress */
    uint32_t crc;       /* CRC state over the bytes that left the 4-byte delay line */
    uint8_t tail[4];    /* the last 4 decoded bytes (the CRC field once the frame ends) */
    uint8_t code;       /* current COBS block's code byte */
    uint8_t left;       /* data bytes still due in the current block */
    bool started;       /* at least one byte of this frame seen */
} ea_rx;

void ea_rx_init(ea_rx *rx, uint8_t *buf, size_t cap);
void ea_rx_reset(ea_rx *rx);
ea_rx_status ea_rx_push(ea_rx *rx, uint8_t byte, ea_frame *out);

/* Fill in header and CRC around a payload already written at frame[EA_FRAME_HEADER].
 * Returns the frame size (payload_len + EA_FRAME_OVERHEAD). ea_frame_seal writes a version-1 frame,
 * ea_frame_seal_v one of the given version (a v2 device answers in each request's version). */
size_t ea_frame_seal_v(uint8_t *frame, uint8_t version, uint8_t type, uint16_t seq, uint16_t payload_len);
size_t ea_frame_seal(uint8_t *frame, uint8_t type, uint16_t seq, uint16_t payload_len);

static inline uint16_t ea_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ea_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void ea_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void ea_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void ea_put_u64(uint8_t *p, uint64_t v)
{
    ea_put_u32(p, (uint32_t)v);
    ea_put_u32(p + 4, (uint32_t)(v >> 32));
}

#endif
