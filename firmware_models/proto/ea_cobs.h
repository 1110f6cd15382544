/* COBS (Consistent Overhead Byte Stuffing) encoding, canonical form as in docs/protocol.md:
 * a block of 254 non-zero bytes gets code 0xFF and no zero follows it, and no empty block is
 * appended after a full one at the end. Decoding is streamed inside the frame receiver
 * (ea_frame.h); ea_cobs_decode here is the one-shot form, used by tests. */
#ifndef EA_COBS_H
#define EA_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Largest encoding of n >= 1 bytes: n + ceil(n / 254). */
#define EA_COBS_MAX_ENCODED(n) ((n) + ((n) + 253u) / 254u)

typedef void (*ea_write_fn)(void *ctx, const uint8_t *data, size_t len);

/* Write COBS(src) followed by the 0x00 delimiter through `write`, block by block, without an
 * encoded copy: each block's code byte is computed by scanning ahead in `src`. */
void ea_cobs_write_frame(const uint8_t *src, size_t len, ea_write_fn write, void *ctx);

/* Encode into dst (no delimiter). Returns the encoded length, or 0 when dst is too small. */
size_t ea_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

/* Decode one encoded frame (no delimiter). Returns the decoded length, or -1 when the input is
 * not valid COBS (a zero byte, a block running past the end) or dst is too small. */
long ea_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

#endif
