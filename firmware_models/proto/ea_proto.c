#include "ea_proto.h"

#include <string.h>

#include "ea_cobs.h"
#include "ea_msg.h"    /* util/ */
#include "ea_strbuf.h" /* util/ */

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
    p->reply_version = (uint8_t)EA_PROTOCOL_VERSION;

    /* The reply buffer holds any ERROR; INFO (about 500 bytes at least) goes into the larger of it
     * and the cache (make_info). */
    if (mem->rx_cap < (size_t)max_payload + EA_FRAME_OVERHEAD || mem->reply_cap < EA_ERROR_FRAME_MAX ||
        (mem->reply_cap < 512u && mem->cache_cap < 512u && mem->reply + mem->reply_cap != mem->cache)) {
        return -1;
    }
    ea_rx_init(&p->rx, mem->rx, (size_t)max_payload + EA_FRAME_OVERHEAD);

    p->n_slots = mem->input_slots == 0u ? 1u : mem->input_slots;
    if (p->n_slots > EA_SLOTS_MAX) {
        p->n_slots = EA_SLOTS_MAX;
    }
    size_t out_bytes = p->model_error == NULL ? model->output.bytes : 0u;
    size_t infer_frame = EA_INFER_FRAME_SIZE(out_bytes);
    if (p->model_error == NULL) {
        if ((size_t)model->input.bytes * p->n_slots > mem->input_cap) {
            p->model_error = EA_MSG("model input is larger than the firmware's input slots "
                             "(rebuild with a larger EA_INPUT_BYTES)");
        } else if (model->output.bytes > mem->output_cap || infer_frame > mem->reply_cap) {
            p->model_error = EA_MSG("model output is larger than the firmware's output buffer "
                             "(rebuild with a larger EA_OUTPUT_BYTES)");
        }
    }
    p->cache_slot_size = (uint32_t)max_size(EA_ERROR_FRAME_MAX,
                                            p->model_error == NULL ? infer_frame : 0u);
    p->cache_slot_size = (p->cache_slot_size + 3u) & ~3u;
    p->cache_slots = (uint32_t)(mem->cache_cap / p->cache_slot_size);
    if (p->cache_slots > EA_REPLY_CACHE_MAX) {
        p->cache_slots = EA_REPLY_CACHE_MAX;
    }
    if (p->cache_slots == 0u) {
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

/* Header and CRC around a payload at frame + EA_FRAME_HEADER, in the request's version. */
static size_t seal(ea_proto *p, uint8_t *frame, uint8_t type, uint16_t seq, size_t payload_len)
{
    return ea_frame_seal_v(frame, p->reply_version, type, seq, (uint16_t)payload_len);
}

static void cache_clear(ea_proto *p)
{
    memset(p->cache, 0, sizeof p->cache);
    p->cache_next = 0;
}

static void cache_put(ea_proto *p, uint16_t seq, const uint8_t *frame, size_t len)
{
    if (len > p->cache_slot_size) {
        return; /* cannot happen with the sizes fixed at init; never cache a truncated reply */
    }
    uint32_t slot = p->cache_next;
    memcpy(p->mem.cache + (size_t)slot * p->cache_slot_size, frame, len);
    p->cache[slot].seq = seq;
    p->cache[slot].len = (uint16_t)len;
    p->cache_next = (slot + 1u) % p->cache_slots;
}

static const ea_cache_entry *cache_find(const ea_proto *p, uint16_t seq, const uint8_t **frame)
{
    for (uint32_t i = 0; i < p->cache_slots; i++) {
        if (p->cache[i].len != 0u && p->cache[i].seq == seq) {
            *frame = p->mem.cache + (size_t)i * p->cache_slot_size;
            return &p->cache[i];
        }
    }
    return NULL;
}

static uint8_t *reply_payload(ea_proto *p) { return p->mem.reply + EA_FRAME_HEADER; }

static ea_strbuf *msg_start(ea_proto *p);

/* Build an ERROR frame in the reply buffer; returns its length. */
static size_t make_error(ea_proto *p, uint16_t seq, uint16_t code, const char *msg)
{
    uint8_t *pl = reply_payload(p);
    if (msg != p->msg) {
        /* through the string builder: an EA_MSG text becomes its token (util/ea_msg.h); every
         * other message (the model's, at most EA_ERROR_LEN) fits the buffer whole */
        ea_sb_raw(msg_start(p), msg);
        msg = p->msg;
    }
    size_t n = ea_strlen(msg);
    if (n > EA_MAX_ERROR_MESSAGE) {
        n = EA_MAX_ERROR_MESSAGE;
        while (n > 0u && ((uint8_t)msg[n] & 0xC0u) == 0x80u) {
            n--; /* do not cut a UTF-8 character in half */
        }
    }
    ea_put_u16(pl, code);
    memcpy(pl + 2, msg, n);
    return seal(p, p->mem.reply, EA_MSG_ERROR, seq, 2u + n);
}

/* An error message built from pieces, in the state's one message buffer (not on the stack: the
 * deepest call chain, PATCH with its INFER into the model's kernels, must fit a small stack). At most
 * one message is being built at any time. */
static ea_strbuf *msg_start(ea_proto *p)
{
    p->msg[0] = '\0';
    ea_sb_init(&p->msg_sb, p->msg, sizeof p->msg);
    return &p->msg_sb;
}

static size_t bad_size(ea_proto *p, uint16_t seq, const char *what, size_t got, const char *rule, size_t want)
{
    ea_strbuf *t = msg_start(p);
    ea_sb_raw(t, what);
    EA_SB_FMT(t, " payload has {}", got);
    ea_sb_raw(t, rule);
    ea_sb_u64(t, want);
    return make_error(p, seq, EA_PROTO_ERR_BAD_REQUEST, p->msg);
}

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
    ea_sb_u64(&t, p->reply_version); /* INFO reports the version it was asked in */
    ea_sb_raw(&t, ", \"protocols\": [1, 2]");
    json_field_u64(&t, "slots", p->n_slots);
    json_field_u64(&t, "boot_id", p->boot_id);
    ea_sb_raw(&t, ", \"board\": ");
    ea_sb_json_str(&t, p->io.board);
    ea_sb_raw(&t, ", \"runtime\": ");
    ea_sb_json_str(&t, p->io.runtime);
    if (p->io.build_id != NULL) {
        static const char digits[] = "0123456789abcdef";
        ea_sb_raw(&t, ", \"build_id\": \"");
        for (uint32_t i = 0; i < p->io.build_id_len; i++) {
            char hex[2] = {digits[p->io.build_id[i] >> 4], digits[p->io.build_id[i] & 0xFu]};
            ea_sb_put(&t, hex, 2);
        }
        ea_sb_raw(&t, "\"");
    }
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
    json_field_u64(&t, "reply_cache", p->cache_slots);
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
        return make_error(p, seq, EA_PROTO_ERR_RUNTIME, EA_MSG("INFO does not fit the reply buffer"));
    }
    *frame = buf;
    return seal(p, buf, EA_MSG_INFO | EA_MSG_REPLY, seq, t.len);
}

/* ------------------------------------------------------------------------------------------- */
/* input slots: LOAD assembly, PATCH */

#define LOAD_HEADER 12u      /* LOAD: dtype u8, 3 reserved, total u32, offset u32 */
#define SLOT_LOAD_HEADER 12u /* SLOT_LOAD: slot u8, dtype u8, 2 reserved, total u32, offset u32 */
#define PATCH_HEADER 12u     /* PATCH: slot u8, flags u8, repeat u16, generation u32, runs u16, 2 reserved */
#define PATCH_RUN 6u         /* each run: offset u32, length u16, then the bytes */
#define PATCH_INFER 0x01u    /* PATCH flags bit 0: run INFER on the patched slot */

static uint8_t *slot_data(ea_proto *p, uint32_t slot)
{
    return p->mem.input + (size_t)slot * p->model.input.bytes;
}

/* A refused LOAD or PATCH leaves its slot unloaded (docs/protocol.md), even after a complete one. */
static void unload(ea_proto *p, uint32_t slot)
{
    p->received[slot] = 0;
    p->loaded[slot] = false;
}

static size_t refuse(ea_proto *p, uint32_t slot, uint16_t seq, uint16_t code, const char *message)
{
    unload(p, slot);
    return make_error(p, seq, code, message);
}

/* Slot index check (ERROR SLOT changes no slot). Returns 0 when the slot exists. */
static size_t check_slot(ea_proto *p, uint16_t seq, uint32_t slot)
{
    if (slot < p->n_slots) {
        return 0;
    }
    EA_SB_FMT(msg_start(p), "slot {} is out of range: this device has slots 0..{} (INFO slots)", slot,
              p->n_slots - 1u);
    return make_error(p, seq, EA_PROTO_ERR_SLOT, p->msg);
}

/* One LOAD chunk into `slot`, checked in docs/protocol.md's order. Returns 0 when accepted (then
 * received[slot] is up to date), else the length of the ERROR reply built. */
static size_t load_chunk(ea_proto *p, uint16_t seq, uint32_t slot, uint8_t dtype, uint32_t total,
                         uint32_t offset, const uint8_t *data, uint32_t chunk)
{
    ea_strbuf *t = msg_start(p);
    uint32_t expected_total = p->model.input.bytes;
    if (dtype != p->model.input.dtype) {
        ea_sb_raw(t, EA_MSG("LOAD dtype "));
        ea_sb_raw(t, ea_dtype_name(dtype));
        EA_SB_FMT(t, " (code {}) is not the model's input dtype ", dtype);
        ea_sb_raw(t, ea_dtype_name(p->model.input.dtype));
        return refuse(p, slot, seq, EA_PROTO_ERR_DTYPE, p->msg);
    }
    if (total != expected_total) {
        EA_SB_FMT(t, "LOAD total {} is not the model's input size {}", total, expected_total);
        return refuse(p, slot, seq, EA_PROTO_ERR_SIZE, p->msg);
    }
    /* docs/protocol.md's order: OFFSET is checked before the overrun SIZE */
    if (offset != 0u && offset != p->received[slot]) {
        EA_SB_FMT(t, "LOAD chunk at offset {}, expected offset {}", offset, p->received[slot]);
        return refuse(p, slot, seq, EA_PROTO_ERR_OFFSET, p->msg);
    }
    if (offset > total || chunk > total - offset) {
        EA_SB_FMT(t, "LOAD chunk of {} bytes at offset {} overruns the input of {} bytes", chunk, offset, total);
        return refuse(p, slot, seq, EA_PROTO_ERR_SIZE, p->msg);
    }
    if (offset == 0u) {
        unload(p, slot); /* offset 0 starts a new tensor: a new generation of the slot */
        p->generation[slot]++;
    }
    memcpy(slot_data(p, slot) + offset, data, chunk);
    p->received[slot] += chunk;
    p->loaded[slot] = p->received[slot] == total;
    return 0;
}

static size_t do_load(ea_proto *p, const ea_frame *f)
{
    if (f->len < LOAD_HEADER) {
        return bad_size(p, f->seq, EA_MSG("LOAD"), f->len, EA_MSG(" bytes, needs at least "), LOAD_HEADER);
    }
    if (p->model_error != NULL) {
        return make_error(p, f->seq, EA_PROTO_ERR_MODEL, p->model_error);
    }
    const uint8_t *pl = f->payload; /* pl[1..3] reserved: ignored, as the host ignores them */
    uint32_t total = ea_get_u32(pl + 4);
    size_t err = load_chunk(p, f->seq, 0u, pl[0], total, ea_get_u32(pl + 8), pl + LOAD_HEADER,
                            (uint32_t)f->len - LOAD_HEADER);
    if (err != 0u) {
        return err;
    }
    uint8_t *rp = reply_payload(p);
    ea_put_u32(rp, p->received[0]);
    ea_put_u32(rp + 4, total);
    return seal(p, p->mem.reply, EA_MSG_LOAD | EA_MSG_REPLY, f->seq, 8u);
}

static size_t do_slot_load(ea_proto *p, const ea_frame *f)
{
    if (f->len < SLOT_LOAD_HEADER) {
        return bad_size(p, f->seq, EA_MSG("SLOT_LOAD"), f->len, EA_MSG(" bytes, needs at least "), SLOT_LOAD_HEADER);
    }
    const uint8_t *pl = f->payload;
    uint32_t slot = pl[0];
    size_t err = check_slot(p, f->seq, slot);
    if (err != 0u) {
        return err;
    }
    if (p->model_error != NULL) {
        return refuse(p, slot, f->seq, EA_PROTO_ERR_MODEL, p->model_error);
    }
    uint32_t total = ea_get_u32(pl + 4);
    err = load_chunk(p, f->seq, slot, pl[1], total, ea_get_u32(pl + 8), pl + SLOT_LOAD_HEADER,
                     (uint32_t)f->len - SLOT_LOAD_HEADER);
    if (err != 0u) {
        return err;
    }
    uint8_t *rp = reply_payload(p);
    rp[0] = (uint8_t)slot;
    rp[1] = rp[2] = rp[3] = 0u;
    ea_put_u32(rp + 4, p->generation[slot]);
    ea_put_u32(rp + 8, p->received[slot]);
    ea_put_u32(rp + 12, total);
    return seal(p, p->mem.reply, EA_MSG_SLOT_LOAD | EA_MSG_REPLY, f->seq, 16u);
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

static size_t not_loaded(ea_proto *p, uint16_t seq, const char *what, uint32_t slot)
{
    ea_strbuf *t = msg_start(p);
    ea_sb_raw(t, what);
    EA_SB_FMT(t, " without a complete input tensor in slot {} ({} of {} bytes loaded)", slot, p->received[slot],
              p->model.input.bytes);
    return make_error(p, seq, EA_PROTO_ERR_NOT_LOADED, p->msg);
}

/* Run the model `repeat` times (0 means 1) on the complete tensor of `slot` and write an INFER reply
 * payload at rp. Returns 0 and its length in *len, or the length of the ERROR reply built. */
static size_t run_slot(ea_proto *p, uint16_t seq, uint32_t slot, uint32_t repeat, uint8_t *rp, size_t *len)
{
    (void)msg_start(p); /* the model writes its failure message there */
    if (repeat == 0u) {
        repeat = 1u;
    }
    uint8_t *out = p->mem.output;
    const uint8_t *in = slot_data(p, slot);
    int rc = 0;
    uint32_t first = p->inferences + 1u;
    timestamp(p, 1);
    uint64_t t0 = p->io.ticks(p->io.ctx);
    for (uint32_t i = 0; i < repeat && rc == 0; i++) {
        rc = p->model.invoke(p->model.ctx, in, out, p->msg, sizeof p->msg);
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
        p->msg[sizeof p->msg - 1u] = '\0';
        return make_error(p, seq, EA_PROTO_ERR_RUNTIME, p->msg[0] != '\0' ? p->msg : EA_MSG("inference failed"));
    }
    uint32_t out_bytes = p->model.output.bytes;
    ea_put_u64(rp, t1 - t0);
    ea_put_u32(rp + 8, p->inferences);
    rp[12] = p->model.output.dtype;
    rp[13] = rp[14] = rp[15] = 0u;
    memcpy(rp + EA_INFER_REPLY_HEADER, out, out_bytes);
    *len = EA_INFER_REPLY_HEADER + out_bytes;
    return 0;
}

static size_t do_infer(ea_proto *p, const ea_frame *f)
{
    if (f->len != 4u) {
        return bad_size(p, f->seq, EA_MSG("INFER"), f->len, EA_MSG(" bytes, expected "), 4u);
    }
    if (p->model_error != NULL) {
        return make_error(p, f->seq, EA_PROTO_ERR_MODEL, p->model_error);
    }
    if (!p->loaded[0]) {
        return not_loaded(p, f->seq, EA_MSG("INFER"), 0u);
    }
    size_t n = 0;
    size_t err = run_slot(p, f->seq, 0u, ea_get_u16(f->payload), reply_payload(p), &n);
    if (err != 0u) {
        return err;
    }
    return seal(p, p->mem.reply, EA_MSG_INFER | EA_MSG_REPLY, f->seq, n);
}

/* PATCH and SLOT_INFER replies: slot, generation, then (when it ran) an INFER reply payload. */
static size_t slot_reply(ea_proto *p, const ea_frame *f, uint32_t slot, bool infer, uint32_t repeat)
{
    uint8_t *rp = reply_payload(p);
    size_t n = 0;
    if (infer) {
        size_t err = run_slot(p, f->seq, slot, repeat, rp + EA_SLOT_REPLY_HEADER, &n);
        if (err != 0u) {
            return err;
        }
    }
    rp[0] = (uint8_t)slot;
    rp[1] = rp[2] = rp[3] = 0u;
    ea_put_u32(rp + 4, p->generation[slot]);
    return seal(p, p->mem.reply, (uint8_t)(f->type | EA_MSG_REPLY), f->seq, EA_SLOT_REPLY_HEADER + n);
}

static size_t do_slot_infer(ea_proto *p, const ea_frame *f)
{
    if (f->len != 4u) {
        return bad_size(p, f->seq, EA_MSG("SLOT_INFER"), f->len, EA_MSG(" bytes, expected "), 4u);
    }
    uint32_t slot = f->payload[0];
    size_t err = check_slot(p, f->seq, slot);
    if (err != 0u) {
        return err;
    }
    if (p->model_error != NULL) {
        return make_error(p, f->seq, EA_PROTO_ERR_MODEL, p->model_error);
    }
    if (!p->loaded[slot]) {
        return not_loaded(p, f->seq, EA_MSG("SLOT_INFER"), slot);
    }
    return slot_reply(p, f, slot, true, ea_get_u16(f->payload + 2));
}

/* PATCH, checked in docs/protocol.md's order; every run is checked before any is applied. */
static size_t do_patch(ea_proto *p, const ea_frame *f)
{
    ea_strbuf *t = msg_start(p);
    const uint8_t *pl = f->payload;
    if (f->len < PATCH_HEADER) {
        return bad_size(p, f->seq, EA_MSG("PATCH"), f->len, EA_MSG(" bytes, needs at least "), PATCH_HEADER);
    }
    uint32_t slot = pl[0];
    uint8_t flags = pl[1];
    uint32_t repeat = ea_get_u16(pl + 2);
    uint32_t generation = ea_get_u32(pl + 4);
    uint32_t runs = ea_get_u16(pl + 8);
    if ((flags & (uint8_t)~PATCH_INFER) != 0u) {
        EA_SB_FMT(t, "PATCH flags {} has unknown bits (only bit 0, INFER, is defined)", flags);
        return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, p->msg);
    }
    /* The runs must fill the payload exactly. */
    size_t pos = PATCH_HEADER;
    for (uint32_t i = 0; i < runs; i++) {
        if (pos + PATCH_RUN > f->len || pos + PATCH_RUN + ea_get_u16(pl + pos + 4) > f->len) {
            EA_SB_FMT(t, "PATCH run {} of {} runs past the payload's end", i, runs);
            return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, p->msg);
        }
        pos += PATCH_RUN + ea_get_u16(pl + pos + 4);
    }
    if (pos != f->len) {
        EA_SB_FMT(t, "PATCH has {} bytes after its {} runs", f->len - pos, runs);
        return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, p->msg);
    }
    size_t err = check_slot(p, f->seq, slot);
    if (err != 0u) {
        return err;
    }
    if (p->model_error != NULL) {
        return refuse(p, slot, f->seq, EA_PROTO_ERR_MODEL, p->model_error);
    }
    if (!p->loaded[slot]) {
        unload(p, slot);
        EA_SB_FMT(t, "PATCH of slot {}, which holds no complete input (LOAD it first)", slot);
        return make_error(p, f->seq, EA_PROTO_ERR_NOT_LOADED, p->msg);
    }
    if (generation != p->generation[slot]) {
        EA_SB_FMT(t, "PATCH computed against generation {} of slot {}, which is at generation {} (LOAD it again)",
                  generation, slot, p->generation[slot]);
        return refuse(p, slot, f->seq, EA_PROTO_ERR_STALE, p->msg);
    }
    uint32_t total = p->model.input.bytes;
    pos = PATCH_HEADER;
    for (uint32_t i = 0; i < runs; i++) {
        uint32_t offset = ea_get_u32(pl + pos);
        uint32_t length = ea_get_u16(pl + pos + 4);
        if (offset > total || length > total - offset) {
            EA_SB_FMT(t, "PATCH run of {} bytes at offset {} overruns slot {}'s {} bytes", length, offset, slot,
                      total);
            return refuse(p, slot, f->seq, EA_PROTO_ERR_SIZE, p->msg);
        }
        pos += PATCH_RUN + length;
    }
    uint8_t *data = slot_data(p, slot);
    pos = PATCH_HEADER;
    for (uint32_t i = 0; i < runs; i++) {
        uint32_t offset = ea_get_u32(pl + pos);
        uint32_t length = ea_get_u16(pl + pos + 4);
        memcpy(data + offset, pl + pos + PATCH_RUN, length);
        pos += PATCH_RUN + length;
    }
    p->generation[slot]++;
    return slot_reply(p, f, slot, (flags & PATCH_INFER) != 0u, repeat);
}

/* ------------------------------------------------------------------------------------------- */
/* dispatch */

static bool known_type(const ea_proto *p, uint8_t type)
{
    switch (type) {
    case EA_MSG_LOAD:
    case EA_MSG_INFER:
    case EA_MSG_RESET:
        return true;
    case EA_MSG_SLOT_LOAD:
    case EA_MSG_PATCH:
    case EA_MSG_SLOT_INFER:
        return p->reply_version >= 2u; /* v2 messages never ride in v1 frames */
    case EA_MSG_DEBUG_FAULT:
        return p->io.debug_fault != NULL; /* test builds only */
    default:
        return false;
    }
}

static size_t execute(ea_proto *p, const ea_frame *f)
{
    ea_strbuf *t = msg_start(p);
    if (!known_type(p, f->type)) {
        EA_SB_FMT(t, "unknown message type {}", f->type);
        if (p->reply_version < 2u && f->type >= EA_MSG_SLOT_LOAD && f->type <= EA_MSG_SLOT_INFER) {
            ea_sb_raw(t, EA_MSG(" in a v1 frame (slots and patches are protocol v2)"));
        }
        return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, p->msg);
    }
    if (f->oversize) {
        EA_SB_FMT(t, "payload of {} bytes is larger than max_payload {}", f->len, p->max_payload);
        return make_error(p, f->seq, EA_PROTO_ERR_TOO_LARGE, p->msg);
    }
    switch (f->type) {
    case EA_MSG_LOAD:
        return do_load(p, f);
    case EA_MSG_INFER:
        return do_infer(p, f);
    case EA_MSG_SLOT_LOAD:
        return do_slot_load(p, f);
    case EA_MSG_PATCH:
        return do_patch(p, f);
    case EA_MSG_SLOT_INFER:
        return do_slot_infer(p, f);
    case EA_MSG_DEBUG_FAULT:
        p->io.debug_fault(p->io.ctx);
        return 0;
    case EA_MSG_RESET:
    default:
        if (f->len != 0u) {
            return make_error(p, f->seq, EA_PROTO_ERR_BAD_REQUEST, EA_MSG("RESET takes an empty payload"));
        }
        p->reset_requested = true;
        return seal(p, p->mem.reply, EA_MSG_RESET | EA_MSG_REPLY, f->seq, 0u);
    }
}

void ea_proto_handle(ea_proto *p, const ea_frame *f)
{
    size_t len;
    if (f->version < EA_PROTOCOL_VERSION || f->version > EA_PROTOCOL_MAX) {
        /* Another protocol's sequence numbers mean nothing here: answer in a v1 frame (every host
         * reads it), change no state. */
        ea_strbuf *t = msg_start(p);
        EA_SB_FMT(t, "device speaks protocols v1 and v2, request is v{}", f->version);
        p->reply_version = (uint8_t)EA_PROTOCOL_VERSION;
        len = make_error(p, f->seq, EA_PROTO_ERR_VERSION, p->msg);
        send_frame(p, p->mem.reply, len);
        return;
    }
    p->reply_version = f->version; /* every reply is in its request's version */
    if (f->type == EA_MSG_INFO) {
        /* INFO always executes and resynchronizes: the host sends it first on every connection. */
        cache_clear(p);
        p->have_last = true;
        p->last_seq = f->seq;
        p->synced = true;
        const uint8_t *frame = p->mem.reply;
        /* v2 INFO may carry the boot_id the host assigns (u32); v1 INFO is empty. */
        bool with_id = f->version >= 2u && f->len == 4u && !f->oversize;
        if (f->oversize || (f->len != 0u && !with_id)) {
            len = make_error(p, f->seq, f->oversize ? EA_PROTO_ERR_TOO_LARGE : EA_PROTO_ERR_BAD_REQUEST,
                             f->version >= 2u ? EA_MSG("INFO takes an empty payload or a 4-byte boot_id")
                                              : EA_MSG("INFO takes an empty payload"));
        } else {
            if (with_id) {
                p->boot_id = ea_get_u32(f->payload);
            }
            len = make_info(p, f->seq, &frame);
        }
        send_frame(p, frame, len);
        return;
    }
    if (!p->synced) {
        /* After boot the host must learn that the device restarted: answer, change nothing, cache
         * nothing, until an INFO arrives. */
        len = make_error(p, f->seq, EA_PROTO_ERR_NOT_SYNCED,
                         EA_MSG("device restarted since the host last synchronized: send INFO first"));
        send_frame(p, p->mem.reply, len);
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
