/* CRC-32 as zlib.crc32 computes it (IEEE 802.3, reflected, init and xorout 0xFFFFFFFF). */
#ifndef EA_CRC32_H
#define EA_CRC32_H

#include <stddef.h>
#include <stdint.h>

#define EA_CRC32_INIT 0xFFFFFFFFu

/* Streaming form: start from EA_CRC32_INIT, feed bytes, finish with ea_crc32_final. */
uint32_t ea_crc32_byte(uint32_t state, uint8_t byte);
uint32_t ea_crc32_update(uint32_t state, const uint8_t *data, size_t len);
static inline uint32_t ea_crc32_final(uint32_t state) { return state ^ 0xFFFFFFFFu; }

/* One-shot: ea_crc32(data, len) == zlib.crc32(data). */
uint32_t ea_crc32(const uint8_t *data, size_t len);

#endif
