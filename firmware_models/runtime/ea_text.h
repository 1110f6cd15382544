/* A tiny bounded string builder for error messages (no printf: keeps firmware small, never overflows). */
#ifndef EA_TEXT_H
#define EA_TEXT_H

#include <stdint.h>

typedef struct {
    char *buf;
    uint32_t cap;   /* including the terminating NUL */
    uint32_t len;
} ea_text;

static inline void ea_text_init(ea_text *t, char *buf, uint32_t cap) {
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    if (cap) buf[0] = '\0';
}

static inline void ea_text_chr(ea_text *t, char c) {
    if (t->cap && t->len + 1 < t->cap) {
        t->buf[t->len++] = c;
        t->buf[t->len] = '\0';
    }
}

static inline void ea_text_str(ea_text *t, const char *s) {
    for (uint32_t i = 0; s && s[i] && i < 256; i++) ea_text_chr(t, s[i]);
}

static inline void ea_text_int(ea_text *t, int64_t v) {
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10u));
        u /= 10u;
    } while (u && n < 22);
    if (v < 0) ea_text_chr(t, '-');
    while (n) ea_text_chr(t, tmp[--n]);
}

#endif /* EA_TEXT_H */
