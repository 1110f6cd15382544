#include "ea_frame.h"

#include <string.h>

#include "ea_crc32.h"

void ea_rx_init(ea_rx *rx, uint8_t *buf, size_t cap)
{
    rx->buf = buf;
    rx->cap = cap;
    ea_rx_reset(rx);
}

void ea_rx_reset(ea_rx *rx)
{
    rx->n = 0;
    rx->crc = EA_CRC32_INIT;
    rx->code = 0;
    rx->left = 0;
    rx->started = false;
    memset(rx->tail, 0, sizeof rx->tail);
}

/* One decoded byte: the byte leaving the delay line goes into the CRC, so when the frame ends the
 * CRC covers everything but the last four bytes, which are the CRC field. */
static void emit(ea_rx *rx, uint8_t byte)
{
    size_t slot = rx->n & 3u;
    if (rx->n >= 4u) {
        rx->crc = ea_crc32_byte(rx->crc, rx->tail[slot]);
    }
    rx->tail[slot] = byte;
    if (rx->n < rx->cap) {
        rx->buf[rx->n] = byte;
    }
    if (rx->n < SIZE_MAX) {
        rx->n++;
    }
}

static ea_rx_status finish(ea_rx *rx, ea_frame *out)
{
    size_t n = rx->n;
    if (!rx->started) {
        return EA_RX_EMPTY;
    }
    if (rx->left != 0u) {
        return EA_RX_DROP_COBS; /* a block ran past the delimiter */
    }
    if (n < EA_FRAME_OVERHEAD) {
        return EA_RX_DROP_SHORT;
    }
    uint16_t len = ea_get_u16(rx->buf + 4);
    if (n != (size_t)len + EA_FRAME_OVERHEAD) {
        return EA_RX_DROP_LENGTH;
    }
    uint8_t crc_field[4];
    for (size_t i = 0; i < 4u; i++) {
        crc_field[i] = rx->tail[(n - 4u + i) & 3u];
    }
    if (ea_get_u32(crc_field) != ea_crc32_final(rx->crc)) {
        return EA_RX_DROP_CRC;
    }
    out->version = rx->buf[0];
    out->type = rx->buf[1];
    out->seq = ea_get_u16(rx->buf + 2);
    out->len = len;
    out->oversize = n > rx->cap;
    out->payload = out->oversize ? NULL : rx->buf + EA_FRAME_HEADER;
    return EA_RX_FRAME;
}

ea_rx_status ea_rx_push(ea_rx *rx, uint8_t byte, ea_frame *out)
{
    if (byte == 0u) {
        ea_rx_status st = finish(rx, out);
        ea_rx_reset(rx);
        return st;
    }
    if (rx->left == 0u) {
        /* A new block: the previous block (unless full) stood for a zero in the data. */
        if (rx->started && rx->code != 0xFFu) {
            emit(rx, 0u);
        }
        rx->started = true;
        rx->code = byte;
        rx->left = (uint8_t)(byte - 1u);
    } else {
        emit(rx, byte);
        rx->left--;
    }
    return EA_RX_PENDING;
}

size_t ea_frame_seal(uint8_t *frame, uint8_t type, uint16_t seq, uint16_t payload_len)
{
    return ea_frame_seal_v(frame, (uint8_t)EA_PROTOCOL_VERSION, type, seq, payload_len);
}

size_t ea_frame_seal_v(uint8_t *frame, uint8_t version, uint8_t type, uint16_t seq, uint16_t payload_len)
{
    frame[0] = version;
    frame[1] = type;
    ea_put_u16(frame + 2, seq);
    ea_put_u16(frame + 4, payload_len);
    size_t body = EA_FRAME_HEADER + (size_t)payload_len;
    ea_put_u32(frame + body, ea_crc32(frame, body));
    return body + EA_FRAME_CRC;
}
