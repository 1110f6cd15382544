/* The firmware's one bounded text builder (the runtime's error messages, the protocol's INFO JSON and
 * ERROR messages, the board port's fault report): no malloc, no printf (newlib-nano's printf has
 * neither 64-bit integers nor, without extra code, floats). A write that does not fit sets `overflow`
 * and the text stays NUL-terminated at the last whole piece that fitted. It sits in util/, the lowest
 * layer, because every other layer uses it. */
#ifndef EA_STRBUF_H
#define EA_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ea_msg.h"

typedef struct {
    char *buf;
    size_t cap; /* including the NUL */
    size_t len;
    bool overflow;
} ea_strbuf;

void ea_sb_init(ea_strbuf *t, char *buf, size_t cap);
/* Like ea_sb_init, but keeps the NUL-terminated text already in buf and appends after it. */
void ea_sb_resume(ea_strbuf *t, char *buf, size_t cap);
/* strlen, in a dozen bytes: newlib's word-at-a-time strlen takes 220 bytes of flash, and no text
 * the firmware measures is long. */
size_t ea_strlen(const char *s);
/* n bytes of s as they are. */
void ea_sb_put(ea_strbuf *t, const char *s, size_t n);
/* A NUL-terminated text, or an EA_MSG text's token in a firmware build (ea_msg.h). */
void ea_sb_raw(ea_strbuf *t, const char *s);
void ea_sb_u64(ea_strbuf *t, uint64_t v);
void ea_sb_i64(ea_strbuf *t, int64_t v);
void ea_sb_hex32(ea_strbuf *t, uint32_t v); /* 0x%08x */
/* fmt with each "{}" replaced by the next of the n args in decimal (a message with numbers in one
 * call). With EA_MSG_CODED, fmt is an EA_MSG text: its token, then each argument's digits followed by
 * EA_MSG_ARG (util/ea_msg.h); the host puts them in the text's places. Use EA_SB_FMT. */
void ea_sb_fmt(ea_strbuf *t, const char *fmt, size_t n, const int64_t *args);
#define EA_SB_FMT(t, fmt, ...)                                                                      \
    ea_sb_fmt((t), EA_MSG(fmt), sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t),                 \
              (const int64_t[]){__VA_ARGS__})
/* A JSON string literal (quotes, escapes; bytes >= 0x80 pass through as UTF-8). */
void ea_sb_json_str(ea_strbuf *t, const char *s);
/* The exact decimal value of a float32 as a JSON number (NaN/Inf -> null), so that
 * json.loads(text) == float(numpy.float32(f)) on the host. */
void ea_sb_json_f32(ea_strbuf *t, float f);
/* A float32 with `decimals` (0..9) digits after the point, as C's printf("%.*f") prints it: the exact
 * binary value rounded to nearest, ties to even; "-" for a set sign bit (also -0.000, -nan), "nan", "inf". */
void ea_sb_f32_fixed(ea_strbuf *t, float f, unsigned decimals);

#endif
