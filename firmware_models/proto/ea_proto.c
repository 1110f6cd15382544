#include "ea_proto.h"

#include <string.h>

#include "ea_cobs.h"
#include "ea_strbuf.h" /* util/ */

#define PROTOCOL_JSON_VERSION 1

const char *ea_dtype_name(uint8_t dtype)
{
    switch (dtype) {
    case EA_PROTO_DTYPE_INT8: return "int8";
    case EA_PROTO_DTYPE_UINT8: return "uint8";
    case EA_PROTO_DTYPE_INT16: return "int16";
    case EA_PROTO_DTYPE_INT32: return "int32";
    case EA_PROTO_DTYPE_FLOAT32: return "float32";
    default: return "unknown";
    }
}

uint32_t ea_dtype_size(uint8_t dtype)
{
    switch (dtype) {
    case EA_PROTO_DTYPE_INT8:
    case EA_PROTO_DTYPE_UINT8: return 1;
    case EA_PROTO_DTYPE_INT16: return 2;
    case EA_PROTO_DTYPE_INT32:
    case EA_PROTO_DTYPE_FLOAT32: return 4;
    default: return 0;
    }
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

int ea_proto_init(ea_proto *p, const ea_proto_io *io, const ea_proto_model *model,
                  const ea_proto_buffers *mem, uint16_t max_payload, uint16_t rx_buffers)
{
    memset(p, 0, sizeof *p);
    p->io = *io;
    p->model = *model;
    p->mem = *mem;
    p->max_payload = max_payload;
    p->rx_buffers = rx_buffers;
    p->model_error = model->error;

    /* The reply buffer holds any ERROR; INFO (about 500 bytes at least) goes into the larger of it
     * and the cache (make_info). */
    if (mem->rx_cap < (size_t)max_payload + EA_FRAME_OVERHEAD || mem->reply_cap < EA_ERROR_FRAME_MAX ||
        (mem->reply_cap < 512u && mem->cache_cap < 512u && mem->reply + mem->reply_cap != mem->cache)) {
        return -1;
    }
    ea_rx_init(&p->rx, mem->rx, (size_t)max_payload + EA_FRAME_OVERHEAD);

    size_t out_bytes = p->model_error == NULL ? model->output.bytes : 0u;
    size_t infer_frame = EA_FRAME_OVERHEAD + EA_INFER_REPLY_HEADER + out_bytes;
    if (p->model_error == NULL) {
        if (model->input.bytes > mem->input_cap) {
            p->model_error = "model input is larger than the firmware's input buffer "
                             "(rebuild with a larger EA_INPUT_BYTES)";
        } else if (model->output.bytes > mem->output_cap || infer_frame > mem->reply_cap) {
            p->model_error = "model output is larger than the firmware's output buffer "
                             "(rebuild with a larger EA_OUTPUT_BYTES)";
        }
    }
    p->slot_size = (uint32_t)max_size(EA_ERROR_FRAME_MAX,
                                      p->model_error == NULL ? infer_frame : 0u);
    p->slot_size = (p->slot_size + 3u) & ~3u;
    p->slots = (uint32_t)(mem->cache_cap / p->slot_size);
    if (p->slots > EA_REPLY_CACHE_MAX) {
        p->slots = EA_REPLY_CACHE_MAX;
    }
    if (p->slots == 0u) {
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* replies */

static void send_frame(ea_proto *p, const uint8_t *frame, size_t len)
{
    ea_cobs_write_frame(frame, len, p->io.write, p->io.ctx);
}

static void cache_clear(ea_proto *p)
{
    memset(p->cache, 0, sizeof p->cache);
    p->cache_next = 0;
}

static void cache_put(ea_proto *p, uint16_t seq, const uint8_t *frame, size_t len)
{
    if (len > p->slot_size) {
        return; /* cannot happen with the sizes fixed at init; never cache a truncated reply */
    }
    uint32_t slot = p->cache_next;
    memcpy(p->mem.cache + (size_t)slot * p->slot_size, frame, len);
    p->cache[slot].seq = seq;
    p->cache[slot].len = (uint16_t)len;
    p->cache_next = (slot + 1u) % p->slots;
}

static const ea_cache_entry *cache_find(const ea_proto *p, uint16_t seq, const uint8_t **frame)
{
    for (uint32_t i = 0; i < p->slots; i++) {
        if (p->cache[i].len != 0u && p->cache[i].seq == seq) {
            *frame = p->mem.cache + (size_t)i * p->slot_size;
            return &p->cache[i];
        }
    }
    return NULL;
}

static uint8_t *reply_payload(ea_proto *p) { return p->mem.reply + EA_FRAME_HEADER; }

/* Build an ERROR frame in the reply buffer; returns its length. */
static size_t make_error(ea_proto *p, uint16_t seq, uint16_t code, const char *msg)
{
    uint8_t *pl = reply_payload(p);
    size_t n = strlen(msg);
    if (n > EA_MAX_ERROR_MESSAGE) {
        n = EA_MAX_ERROR_MESSAGE;
        while (n > 0u && ((uint8_t)msg[n] & 0xC0u) == 0x80u) {
            n--; /* do not cut a UTF-8 character in half */
        }
    }
    ea_put_u16(pl, code);
    memcpy(pl + 2, msg, n);
    return ea_frame_seal(p->mem.reply, EA_MSG_ERROR, seq, (uint16_t)(2u + n));
}

/* An error whose message is built from pieces. */
typedef struct {
    char buf[EA_MAX_ERROR_MESSAGE + 1u];
    ea_strbuf t;
} msgbuf;

static void msg_init(msgbuf *m) { ea_sb_init(&m->t, m->buf, sizeof m->buf); }

/* ------------------------------------------------------------------------------------------- */
/* INFO */

static void json_tensor(ea_strbuf *t, const ea_proto_tensor *ti)
{
    ea_sb_raw(t, "{\"shape\": [");
    for (uint32_t i = 0; i < ti->rank && i < EA_MAX_RANK; i++) {
        if (i > 0u) {
            ea_sb_raw(t, ", ");
        }
        ea_sb_i64(t, ti->dims[i]);
    }
    ea_sb_raw(t, "], \"dtype\": ");
    ea_sb_json_str(t, ea_dtype_name(ti->dtype));
    ea_sb_raw(t, ", \"scale\": ");
    ea_sb_json_f32(t, ti->scale);
    ea_sb_raw(t, ", \"zero_point\": ");
    ea_sb_i64(t, ti->zero_point);
    ea_sb_raw(t, "}");
}

static void json_field_u64(ea_strbuf *t, const char *name, uint64_t v)
{
    ea_sb_raw(t, ", ");
    ea_sb_json_str(t, name);
    ea_sb_raw(t, ": ");
    ea_sb_u64(t, v);
}

/* INFO's frame may use the reply cache's memory: INFO empties the cache and is never cached itself,
 * so a firmware needs no reply buffer as large as INFO. With the cache right after the reply buffer
 * (the firmware's layout) the frame spans both, else it takes the larger of the two. */
static uint8_t *info_frame(ea_proto *p, size_t *cap)
{
    if (p->mem.reply + p->mem.reply_cap == p->mem.cache) {
        *cap = p->mem.reply_cap + p->mem.cache_cap;
        return p->mem.reply;
    }
    bool in_cache = p->mem.cache_cap > p->mem.reply_cap;
    *cap = in_cache ? p->mem.cache_cap : p->mem.reply_cap;
    return in_cache ? p->mem.cache : p->mem.reply;
}

/* Returns the frame's length; *frame is where it is (make_error's reply buffer if INFO overflows). */
static size_t make_info(ea_proto *p, uint16_t seq, const uint8_t **frame)
{
    /* The JSON goes straight into the frame's payload area; its NUL terminator lands where the CRC
     * will be written, so the payload may use everything but the CRC's 4 bytes. */
    size_t cap;
    uint8_t *buf = info_frame(p, &cap);
    size_t room = cap - EA_FRAME_OVERHEAD;
    if (room > 0xFFFFu) {
        room = 0xFFFFu;
    }
    ea_strbuf t;
    ea_sb_init(&t, (char *)buf + EA_FRAME_HEADER, room + 1u);
    ea_sb_raw(&t, "{\"protocol\": ");
    ea_sb_u64(&t, PROTOCOL_JSON_VERSION);
    ea_sb_raw(&t, ", \"board\": ");
    ea_sb_json_str(&t, p->io.board);
    ea_sb_raw(&t, ", \"runtime\": ");
    ea_sb_json_str(&t, p->io.runtime);
    ea_sb_raw(&t, ", \"model_sha256\": ");
    ea_sb_json_str(&t, p->model.sha256 != NULL ? p->model.sha256 : "");
    ea_sb_raw(&t, ", \"input\": ");
    if (p->model.input.rank > 0u) {
        json_tensor(&t, &p->model.input);
    } else {
        ea_sb_raw(&t, "null");
    }
    ea_sb_raw(&t, ", \"output\": ");
    if (p->model.output.rank > 0u) {
        json_tensor(&t, &p->model.output);
    } else {
        ea_sb_raw(&t, "null");
    }
    json_field_u64(&t, "tick_hz", p->io.tick_hz);
    json_field_u64(&t, "max_payload", p->max_payload);
    json_field_u64(&t, "rx_buffers", p->rx_buffers);
    json_field_u64(&t, "reply_cache", p->slots);
    json_field_u64(&t, "inferences", p->inferences);
    json_field_u64(&t, "overruns", p->io.overruns != NULL ? p->io.overruns(p->io.ctx) : 0u);
    json_field_u64(&t, "crc_errors", p->crc_errors);
    json_field_u64(&t, "dropped_frames", p->dropped);
    json_field_u64(&t, "seq_gaps", p->seq_gaps);
    if (p->model.arena_used != 0u) {
        json_field_u64(&t, "arena_used", p->model.arena_used);
    }
    if (p->io.stack_used != NULL) {
        json_field_u64(&t, "stack_used", p->io.stack_used(p->io.ctx));
        json_field_u64(&t, "stack_bytes", p->io.stack_bytes);
    }
    ea_sb_raw(&t, ", \"log\": [");
    uint32_t n = p->log_count < EA_LOG_EVENTS ? p->log_count : EA_LOG_EVENTS;
    for (uint32_t i = 0; i < n; i++) {
        const ea_log_event *ev = &p->log[(p->log_count - n + i) % EA_LOG_EVENTS];
        ea_sb_raw(&t, i == 0u ? "{\"event\": " : ", {\"event\": ");
        ea_sb_json_str(&t, ev->event == 0u ? "start" : "end");
        json_field_u64(&t, "ticks", ev->ticks);
        json_field_u64(&t, "inference", ev->inference);
        ea_sb_raw(&t, "}");
    }
    ea_sb_raw(&t, "]");
    if (p->model_error != NULL) {
        ea_sb_raw(&t, ", \"error\": ");
        ea_sb_json_str(&t, p->model_error);
    }
    ea_sb_raw(&t, "}");
    if (t.overflow) {
        *frame = p->mem.reply;
        return make_error(p, seq, EA_PROTO_ERR_RUNTIME, "INFO does not fit the reply buffer");
    }
    *frame = buf;
    return ea_frame_seal(buf, EA_MSG_INFO | EA_MSG_REPLY, seq, (uint16_t)t.len);
}

/* ------------------------------------------------------------------------------------------- */
/* LOAD */

#define LOAD_HEADER 12u

/* A refused LOAD leaves no tensor loaded (docs/protocol.md), even after a complete one. */
static size_t refuse_load(ea_proto *p, uint16_t seq, uint16_t code, const char *message)
{
    p->received = 0;
    p->loaded = false;
    return make_error(p, seq, code, message);
}

static size_t do_load(ea_proto *p, const ea_frame *f)
{
    msgbuf m;
    msg_init(&m);
    if (f->len < LOAD_HEADER) {
        ea_sb_raw(&m.t, "LOAD payload has ");
        ea_sb_u64(&m.t, f->len);
        ea_sb_raw(&m.t, " bytes, needs at least 12");
        return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, m.buf);
    }
    if (p->model_error != NULL) {
        return make_error(p, f->seq, EA_PROTO_ERR_MODEL, p->model_error);
    }
    const uint8_t *pl = f->payload;
    uint8_t dtype = pl[0]; /* pl[1..3] reserved: ignored, as the host ignores them */
    uint32_t total = ea_get_u32(pl + 4);
    uint32_t offset = ea_get_u32(pl + 8);
    uint32_t chunk = (uint32_t)f->len - LOAD_HEADER;
    uint32_t expected_total = p->model.input.bytes;
    if (dtype != p->model.input.dtype) {
        ea_sb_raw(&m.t, "LOAD dtype ");
        ea_sb_raw(&m.t, ea_dtype_name(dtype));
        ea_sb_raw(&m.t, " (code ");
        ea_sb_u64(&m.t, dtype);
        ea_sb_raw(&m.t, ") is not the model's input dtype ");
        ea_sb_raw(&m.t, ea_dtype_name(p->model.input.dtype));
        return refuse_load(p, f->seq, EA_PROTO_ERR_DTYPE, m.buf);
    }
    if (total != expected_total) {
        ea_sb_raw(&m.t, "LOAD total ");
        ea_sb_u64(&m.t, total);
        ea_sb_raw(&m.t, " is not the model's input size ");
        ea_sb_u64(&m.t, expected_total);
        return refuse_load(p, f->seq, EA_PROTO_ERR_SIZE, m.buf);
    }
    /* docs/protocol.md's order: OFFSET is checked before the overrun SIZE */
    if (offset != 0u && offset != p->received) {
        ea_sb_raw(&m.t, "LOAD chunk at offset ");
        ea_sb_u64(&m.t, offset);
        ea_sb_raw(&m.t, ", expected offset ");
        ea_sb_u64(&m.t, p->received);
        return refuse_load(p, f->seq, EA_PROTO_ERR_OFFSET, m.buf);
    }
    if (offset > total || chunk > total - offset) {
        ea_sb_raw(&m.t, "LOAD chunk of ");
        ea_sb_u64(&m.t, chunk);
        ea_sb_raw(&m.t, " bytes at offset ");
        ea_sb_u64(&m.t, offset);
        ea_sb_raw(&m.t, " overruns the input of ");
        ea_sb_u64(&m.t, total);
        ea_sb_raw(&m.t, " bytes");
        return refuse_load(p, f->seq, EA_PROTO_ERR_SIZE, m.buf);
    }
    if (offset == 0u) {
        p->received = 0; /* offset 0 starts a new tensor */
        p->loaded = false;
    }
    memcpy(p->mem.input + offset, pl + LOAD_HEADER, chunk);
    p->received += chunk;
    p->loaded = p->received == total;
    uint8_t *rp = reply_payload(p);
    ea_put_u32(rp, p->received);
    ea_put_u32(rp + 4, total);
    return ea_frame_seal(p->mem.reply, EA_MSG_LOAD | EA_MSG_REPLY, f->seq, 8u);
}

/* ------------------------------------------------------------------------------------------- */
/* INFER */

static void log_event(ea_proto *p, uint8_t event, uint64_t ticks, uint32_t inference)
{
    ea_log_event *ev = &p->log[p->log_count % EA_LOG_EVENTS];
    ev->event = event;
    ev->ticks = ticks;
    ev->inference = inference;
    p->log_count++;
}

static void timestamp(ea_proto *p, int level)
{
    if (p->io.timestamp != NULL) {
        p->io.timestamp(p->io.ctx, level);
    }
}

static size_t do_infer(ea_proto *p, const ea_frame *f)
{
    msgbuf m;
    msg_init(&m);
    if (f->len != 4u) {
        ea_sb_raw(&m.t, "INFER payload has ");
        ea_sb_u64(&m.t, f->len);
        ea_sb_raw(&m.t, " bytes, expected 4");
        return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, m.buf);
    }
    if (p->model_error != NULL) {
        return make_error(p, f->seq, EA_PROTO_ERR_MODEL, p->model_error);
    }
    if (!p->loaded) {
        ea_sb_raw(&m.t, "INFER without a complete input tensor (");
        ea_sb_u64(&m.t, p->received);
        ea_sb_raw(&m.t, " of ");
        ea_sb_u64(&m.t, p->model.input.bytes);
        ea_sb_raw(&m.t, " bytes loaded)");
        return make_error(p, f->seq, EA_PROTO_ERR_NOT_LOADED, m.buf);
    }
    uint32_t repeat = ea_get_u16(f->payload);
    if (repeat == 0u) {
        repeat = 1u;
    }
    uint8_t *out = p->mem.output;
    int rc = 0;
    uint32_t first = p->inferences + 1u;
    timestamp(p, 1);
    uint64_t t0 = p->io.ticks(p->io.ctx);
    for (uint32_t i = 0; i < repeat && rc == 0; i++) {
        rc = p->model.invoke(p->model.ctx, p->mem.input, out, m.buf, sizeof m.buf);
        if (rc == 0) {
            p->inferences++;
        }
    }
    uint64_t t1 = p->io.ticks(p->io.ctx);
    timestamp(p, 0);
    /* Logged after the window so the bookkeeping is not counted in it: end - start == ticks. */
    log_event(p, 0, t0, first);
    log_event(p, 1, t1, p->inferences);
    if (rc != 0) {
        m.buf[sizeof m.buf - 1u] = '\0';
        return make_error(p, f->seq, EA_PROTO_ERR_RUNTIME, m.buf[0] != '\0' ? m.buf : "inference failed");
    }
    uint8_t *rp = reply_payload(p);
    uint32_t out_bytes = p->model.output.bytes;
    ea_put_u64(rp, t1 - t0);
    ea_put_u32(rp + 8, p->inferences);
    rp[12] = p->model.output.dtype;
    rp[13] = rp[14] = rp[15] = 0u;
    memcpy(rp + EA_INFER_REPLY_HEADER, out, out_bytes);
    return ea_frame_seal(p->mem.reply, EA_MSG_INFER | EA_MSG_REPLY, f->seq,
                         (uint16_t)(EA_INFER_REPLY_HEADER + out_bytes));
}

/* ------------------------------------------------------------------------------------------- */
/* dispatch */

static size_t execute(ea_proto *p, const ea_frame *f)
{
    msgbuf m;
    msg_init(&m);
    if (f->oversize) {
        ea_sb_raw(&m.t, "payload of ");
        ea_sb_u64(&m.t, f->len);
        ea_sb_raw(&m.t, " bytes is larger than max_payload ");
        ea_sb_u64(&m.t, p->max_payload);
        return make_error(p, f->seq, EA_PROTO_ERR_TOO_LARGE, m.buf);
    }
    switch (f->type) {
    case EA_MSG_LOAD:
        return do_load(p, f);
    case EA_MSG_INFER:
        return do_infer(p, f);
    case EA_MSG_RESET:
        if (f->len != 0u) {
            return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, "RESET takes an empty payload");
        }
        p->reset_requested = true;
        return ea_frame_seal(p->mem.reply, EA_MSG_RESET | EA_MSG_REPLY, f->seq, 0u);
    case EA_MSG_DEBUG_FAULT:
        if (p->io.debug_fault != NULL) {
            p->io.debug_fault(p->io.ctx);
            return 0;
        }
        break; /* not a test build: unknown */
    default:
        break;
    }
    ea_sb_raw(&m.t, "unknown message type ");
    ea_sb_u64(&m.t, f->type);
    return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, m.buf);
}

void ea_proto_handle(ea_proto *p, const ea_frame *f)
{
    size_t len;
    if (f->version != EA_PROTOCOL_VERSION) {
        /* Another protocol's sequence numbers mean nothing here: answer, change no state. */
        len = make_error(p, f->seq, EA_PROTO_ERR_VERSION, "device speaks protocol v1");
        send_frame(p, p->mem.reply, len);
        return;
    }
    if (f->type == EA_MSG_INFO) {
        /* INFO always executes and resynchronizes: the host sends it first on every connection. */
        cache_clear(p);
        p->have_last = true;
        p->last_seq = f->seq;
        const uint8_t *frame = p->mem.reply;
        if (f->oversize || f->len != 0u) {
            len = make_error(p, f->seq, f->oversize ? EA_PROTO_ERR_TOO_LARGE : EA_PROTO_ERR_BAD_REQUEST,
                             "INFO takes an empty payload");
        } else {
            len = make_info(p, f->seq, &frame);
        }
        send_frame(p, frame, len);
        return;
    }
    if (!p->have_last || f->seq == (uint16_t)(p->last_seq + 1u)) {
        len = execute(p, f);
        p->have_last = true;
        p->last_seq = f->seq;
        cache_put(p, f->seq, p->mem.reply, len);
        send_frame(p, p->mem.reply, len);
        return;
    }
    const uint8_t *cached;
    const ea_cache_entry *e = cache_find(p, f->seq, &cached);
    if (e != NULL) {
        send_frame(p, cached, e->len); /* a retransmission: never execute twice */
        return;
    }
    p->seq_gaps++; /* an earlier request was lost; the host will go back */
}

void ea_proto_feed(ea_proto *p, uint8_t byte)
{
    ea_frame f;
    switch (ea_rx_push(&p->rx, byte, &f)) {
    case EA_RX_PENDING:
    case EA_RX_EMPTY:
        return;
    case EA_RX_FRAME:
        ea_proto_handle(p, &f);
        return;
    case EA_RX_DROP_CRC:
        p->crc_errors++;
        p->dropped++;
        return;
    case EA_RX_DROP_COBS:
    case EA_RX_DROP_SHORT:
    case EA_RX_DROP_LENGTH:
    default:
        p->dropped++;
        return;
    }
}
