#include "ea_cobs.h"

/* Length of the run of non-zero bytes starting at src[0], capped at 254. */
static size_t run_length(const uint8_t *src, size_t len)
{
    size_t n = 0;
    while (n < len && n < 254u && src[n] != 0u) {
        n++;
    }
    return n;
}

void ea_cobs_write_frame(const uint8_t *src, size_t len, ea_write_fn write, void *ctx)
{
    size_t pos = 0;
    for (;;) {
        size_t run = run_length(src + pos, len - pos);
        uint8_t code = (uint8_t)(run + 1u);
        write(ctx, &code, 1);
        if (run > 0u) {
            write(ctx, src + pos, run);
        }
        pos += run;
        if (run == 254u) {
            if (pos == len) {
                break; /* canonical: no empty block after a full one at the end */
            }
            continue; /* a full block implies no zero: the next block starts right here */
        }
        if (pos == len) {
            break;
        }
        pos++; /* skip the zero this block's code stands for */
    }
    static const uint8_t delimiter = 0u;
    write(ctx, &delimiter, 1);
}

struct buf_sink {
    uint8_t *dst;
    size_t cap;
    size_t len;
    int overflow;
};

static void buf_write(void *ctx, const uint8_t *data, size_t len)
{
    struct buf_sink *s = ctx;
    for (size_t i = 0; i < len; i++) {
        if (s->len < s->cap) {
            s->dst[s->len] = data[i];
        } else {
            s->overflow = 1;
        }
        s->len++;
    }
}

size_t ea_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    struct buf_sink s = {dst, cap, 0, 0};
    ea_cobs_write_frame(src, len, buf_write, &s);
    s.len--; /* drop the delimiter */
    if (s.overflow && s.len > cap) {
        return 0;
    }
    return s.len;
}

long ea_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t i = 0;
    size_t out = 0;
    if (len == 0u) {
        return -1;
    }
    while (i < len) {
        uint8_t code = src[i];
        if (code == 0u || (size_t)code > len - i) {
            return -1;
        }
        for (size_t k = 1; k < code; k++) {
            if (src[i + k] == 0u || out >= cap) {
                return -1;
            }
            dst[out++] = src[i + k];
        }
        i += code;
        if (code != 0xFFu && i < len) {
            if (out >= cap) {
                return -1;
            }
            dst[out++] = 0u;
        }
    }
    return (long)out;
}
