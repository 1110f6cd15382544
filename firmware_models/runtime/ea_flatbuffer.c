/* Bounds-checked flatbuffer access. All arithmetic on positions is done in uint64 so that no sum of a
 * position and an untrusted offset can wrap around. */
#include "ea_flatbuffer.h"

#include "ea_strbuf.h"
#include "ea_msg.h"

static uint32_t ld_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint16_t ld_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

int fb_fail(fb_reader *r, const char *what, const char *reason) {
    ea_strbuf t;
    ea_sb_init(&t, r->err, r->err_len);
    if (what) {
        ea_sb_raw(&t, what);
        ea_sb_raw(&t, EA_MSG(": "));
    }
    ea_sb_raw(&t, reason);
    return -1;
}

/* [pos, pos + size) lies inside the buffer. */
static int in_buf(const fb_reader *r, uint64_t pos, uint64_t size) { return pos <= r->len && size <= r->len - pos; }

static int table_at(fb_reader *r, uint64_t pos, const char *what, fb_table *out) {
    if (!in_buf(r, pos, 4)) return fb_fail(r, what, EA_MSG("table offset out of bounds"));
    const int32_t soff = (int32_t)ld_u32(r->buf + pos);
    const int64_t vt = (int64_t)pos - (int64_t)soff;
    if (vt < 0 || !in_buf(r, (uint64_t)vt, 4)) return fb_fail(r, what, EA_MSG("vtable offset out of bounds"));
    const uint16_t vt_size = ld_u16(r->buf + vt);
    const uint16_t size = ld_u16(r->buf + vt + 2);
    if (vt_size < 4 || (vt_size & 1u)) return fb_fail(r, what, EA_MSG("bad vtable size"));
    if (!in_buf(r, (uint64_t)vt, vt_size)) return fb_fail(r, what, EA_MSG("vtable extends past the end"));
    if (size < 4 || !in_buf(r, pos, size)) return fb_fail(r, what, EA_MSG("table extends past the end"));
    out->pos = (uint32_t)pos;
    out->vt = (uint32_t)vt;
    out->vt_size = vt_size;
    out->size = size;
    return 0;
}

int fb_root(fb_reader *r, const char *ident, fb_table *out) {
    if (r->len < 8) return fb_fail(r, EA_MSG("model"), EA_MSG("too short to be a flatbuffer"));
    if (ident) {
        for (int i = 0; i < 4; i++)
            if (r->buf[4 + i] != (uint8_t)ident[i]) return fb_fail(r, EA_MSG("model"), EA_MSG("wrong file identifier (not a .tflite file)"));
    }
    return table_at(r, ld_u32(r->buf), EA_MSG("model root"), out);
}

int fb_field(fb_reader *r, const fb_table *t, unsigned id, unsigned size, const char *what, uint32_t *pos) {
    const uint32_t slot = 4u + 2u * id;
    *pos = 0;
    if (slot + 2u > t->vt_size) return 0;
    const uint16_t off = ld_u16(r->buf + t->vt + slot);
    if (off == 0) return 0;
    if ((uint32_t)off + size > t->size) return fb_fail(r, what, EA_MSG("field lies outside its table"));
    *pos = t->pos + off;
    return 0;
}

#define FB_SCALAR(name, type, nbytes, load)                                                            \
    int name(fb_reader *r, const fb_table *t, unsigned id, type def, const char *what, type *out) {    \
        uint32_t pos;                                                                                  \
        if (fb_field(r, t, id, nbytes, what, &pos)) return -1;                                         \
        *out = pos ? (type)(load) : def;                                                               \
        return 0;                                                                                      \
    }

FB_SCALAR(fb_u8, uint8_t, 1, r->buf[pos])
FB_SCALAR(fb_i8, int8_t, 1, (int8_t)r->buf[pos])
FB_SCALAR(fb_i32, int32_t, 4, (int32_t)ld_u32(r->buf + pos))
FB_SCALAR(fb_u32, uint32_t, 4, ld_u32(r->buf + pos))
FB_SCALAR(fb_u64, uint64_t, 8, (uint64_t)ld_u32(r->buf + pos) | ((uint64_t)ld_u32(r->buf + pos + 4) << 32))

int fb_f32(fb_reader *r, const fb_table *t, unsigned id, float def, const char *what, float *out) {
    uint32_t pos;
    if (fb_field(r, t, id, 4, what, &pos)) return -1;
    if (!pos) {
        *out = def;
        return 0;
    }
    union { uint32_t u; float f; } v;
    v.u = ld_u32(r->buf + pos);
    *out = v.f;
    return 0;
}

/* Follows the uoffset stored at `pos`. */
static int deref(fb_reader *r, uint32_t pos, const char *what, uint64_t *target) {
    if (!in_buf(r, pos, 4)) return fb_fail(r, what, EA_MSG("offset out of bounds"));
    const uint32_t off = ld_u32(r->buf + pos);
    if (off == 0) return fb_fail(r, what, EA_MSG("null offset"));
    *target = (uint64_t)pos + off;
    if (*target >= r->len) return fb_fail(r, what, EA_MSG("offset points past the end"));
    return 0;
}

int fb_table_field(fb_reader *r, const fb_table *t, unsigned id, const char *what, fb_table *out, int *present) {
    uint32_t pos;
    uint64_t target;
    *present = 0;
    if (fb_field(r, t, id, 4, what, &pos)) return -1;
    if (!pos) return 0;
    if (deref(r, pos, what, &target) || table_at(r, target, what, out)) return -1;
    *present = 1;
    return 0;
}

int fb_vector_field(fb_reader *r, const fb_table *t, unsigned id, unsigned elem_size, const char *what,
                    fb_vector *out) {
    uint32_t pos;
    uint64_t target;
    out->pos = 0;
    out->count = 0;
    if (fb_field(r, t, id, 4, what, &pos)) return -1;
    if (!pos) return 0;
    if (deref(r, pos, what, &target)) return -1;
    if (!in_buf(r, target, 4)) return fb_fail(r, what, EA_MSG("vector length out of bounds"));
    const uint32_t count = ld_u32(r->buf + target);
    if (!in_buf(r, target + 4, (uint64_t)count * elem_size)) return fb_fail(r, what, EA_MSG("vector extends past the end"));
    out->pos = (uint32_t)(target + 4);
    out->count = count;
    return 0;
}

int fb_vector_table(fb_reader *r, const fb_vector *v, uint32_t i, const char *what, fb_table *out) {
    if (i >= v->count) return fb_fail(r, what, EA_MSG("index out of range"));
    uint64_t target;
    if (deref(r, v->pos + 4u * i, what, &target)) return -1;
    return table_at(r, target, what, out);
}

int32_t fb_vec_i32(const fb_reader *r, const fb_vector *v, uint32_t i) {
    if (i >= v->count) return 0;
    return (int32_t)ld_u32(r->buf + v->pos + 4u * i);
}

int64_t fb_vec_i64(const fb_reader *r, const fb_vector *v, uint32_t i) {
    if (i >= v->count) return 0;
    const uint8_t *p = r->buf + v->pos + 8u * i;
    return (int64_t)((uint64_t)ld_u32(p) | ((uint64_t)ld_u32(p + 4) << 32));
}

float fb_vec_f32(const fb_reader *r, const fb_vector *v, uint32_t i) {
    union { uint32_t u; float f; } x;
    x.u = i < v->count ? ld_u32(r->buf + v->pos + 4u * i) : 0u;
    return x.f;
}
