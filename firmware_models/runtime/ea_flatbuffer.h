/* A minimal, bounds-checked flatbuffer reader (just what the TFLite schema needs).
 *
 * Every offset is checked against the buffer length before it is followed; every access goes through
 * byte loads, so neither alignment nor endianness of the host matters. A failed check records
 * "<what>: <reason>" in the error buffer and returns -1.
 */
#ifndef EA_FLATBUFFER_H
#define EA_FLATBUFFER_H

#include <stdint.h>

typedef struct {
    const uint8_t *buf;
    uint32_t len;
    char *err;           /* error message buffer (EA_ERROR_LEN bytes) */
    uint32_t err_len;
} fb_reader;

typedef struct {
    uint32_t pos;        /* table start */
    uint32_t vt;         /* vtable start */
    uint16_t vt_size;
    uint16_t size;       /* inline size of the table */
} fb_table;

typedef struct {
    uint32_t pos;        /* first element */
    uint32_t count;
} fb_vector;

/* Root table of the buffer; checks the 4-byte file identifier at offset 4 when `ident` is not NULL. */
int fb_root(fb_reader *r, const char *ident, fb_table *out);

/* Position of scalar field `id` of `size` bytes, or 0 when the field is absent (use its default). */
int fb_field(fb_reader *r, const fb_table *t, unsigned id, unsigned size, const char *what, uint32_t *pos);

int fb_u8(fb_reader *r, const fb_table *t, unsigned id, uint8_t def, const char *what, uint8_t *out);
int fb_i8(fb_reader *r, const fb_table *t, unsigned id, int8_t def, const char *what, int8_t *out);
int fb_i32(fb_reader *r, const fb_table *t, unsigned id, int32_t def, const char *what, int32_t *out);
int fb_u32(fb_reader *r, const fb_table *t, unsigned id, uint32_t def, const char *what, uint32_t *out);
int fb_u64(fb_reader *r, const fb_table *t, unsigned id, uint64_t def, const char *what, uint64_t *out);
int fb_f32(fb_reader *r, const fb_table *t, unsigned id, float def, const char *what, float *out);

/* Sub-table field; *present = 0 when absent. */
int fb_table_field(fb_reader *r, const fb_table *t, unsigned id, const char *what, fb_table *out, int *present);
/* Vector field of elements of `elem_size` bytes (4 for tables/strings); absent gives count 0. */
int fb_vector_field(fb_reader *r, const fb_table *t, unsigned id, unsigned elem_size, const char *what,
                    fb_vector *out);
/* Table element i of a vector of tables. */
int fb_vector_table(fb_reader *r, const fb_vector *v, uint32_t i, const char *what, fb_table *out);

/* Element loads from a validated vector (i < count is the caller's duty, checked again here). */
int32_t fb_vec_i32(const fb_reader *r, const fb_vector *v, uint32_t i);
int64_t fb_vec_i64(const fb_reader *r, const fb_vector *v, uint32_t i);
float fb_vec_f32(const fb_reader *r, const fb_vector *v, uint32_t i);

/* Records an error "<what>: <reason>" (what may be NULL). Always returns -1. */
int fb_fail(fb_reader *r, const char *what, const char *reason);

#endif /* EA_FLATBUFFER_H */
