/* Host-side test driver for the firmware's protocol code (firmware_models/proto), built by
 * tests/test_fw_proto.py with -fsanitize=address,undefined. One command per stdin line, one answer
 * per line on stdout, everything binary in hex:
 *
 *   rx HEX          feed the bytes to a frame receiver (ea_rx, max payload from argv[1]); answers
 *                   the events, space-separated: F:<ver>:<type>:<seq>:<payloadhex>, O:<ver>:<type>:
 *                   <seq>:<len> (oversize, CRC good), E (empty), D:cobs|short|length|crc
 *   enc TYPE SEQ HEX  the wire bytes (COBS + 0x00) of a version-1 frame
 *   encv VERSION TYPE SEQ HEX  the same for a frame of any version (v2 replies)
 *   crc HEX         CRC-32 of the bytes, 8 hex digits
 *   json_f32 BITS   ea_sb_json_f32 of the float32 with these bits (hex)
 *   cobsenc HEX     ea_cobs_encode of the bytes (no delimiter)
 *   cobsdec HEX     ea_cobs_decode of the bytes, or "ERR"
 *   runs            how many inferences the model ran since the harness started (RESETs included)
 *   dev HEX         feed the bytes to the protocol server; answers the reply bytes it wrote
 *                   (hex, "-" when none). After a RESET reply the server is re-initialized, as the
 *                   device restarts.
 *
 * The server's model is a stand-in written for these tests (not a neural network): input int8
 * [1,4,4,1] (16 bytes), output int8 [1,3]; out[k] = (sum(input) + 7k) mod 256; an input starting
 * with two 0x7F bytes makes the "inference" fail. argv[2] == "broken" gives a model that failed to
 * load. argv: MAX_PAYLOAD [ok|broken] [REPLY_CACHE_SLOTS (default 8)] [INPUT_SLOTS (default 4)].
 * The real runtime is exercised end to end on QEMU (tests/test_fw_qemu.py, test_fw_v2_qemu.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ea_cobs.h"
#include "ea_crc32.h"
#include "ea_frame.h"
#include "ea_proto.h"
#include "ea_strbuf.h"

#define MAX_LINE (1 << 20)

static ea_proto g_proto;
static ea_proto_io g_io;
static ea_proto_model g_model;
static ea_proto_buffers g_mem;
static uint16_t g_max_payload;
static uint64_t g_ticks;
static unsigned long g_runs; /* successful test_invoke calls since start */

/* Exact-size heap buffers so ASan catches any access past them. */
static uint8_t *g_rx, *g_reply, *g_cache, *g_input, *g_output;

static uint8_t g_out_bytes[1 << 17]; /* the largest frame (65535-byte payload) encoded */
static size_t g_out_len;

static void out_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    if (g_out_len + len > sizeof g_out_bytes) {
        fprintf(stderr, "reply too large\n");
        exit(3);
    }
    memcpy(g_out_bytes + g_out_len, data, len);
    g_out_len += len;
}

static uint64_t ticks(void *ctx)
{
    (void)ctx;
    return g_ticks += 1000u; /* strictly increasing: windows have a positive length */
}

static uint32_t overruns(void *ctx)
{
    (void)ctx;
    return 0;
}

static int test_invoke(void *ctx, const uint8_t *input, uint8_t *output, char *msg, size_t cap)
{
    (void)ctx;
    if (input[0] == 0x7F && input[1] == 0x7F) {
        snprintf(msg, cap, "test model: inference failed on purpose");
        return -1;
    }
    unsigned sum = 0;
    for (int i = 0; i < 16; i++) {
        sum += input[i];
    }
    for (unsigned k = 0; k < 3; k++) {
        output[k] = (uint8_t)(sum + 7u * k);
    }
    g_runs++;
    return 0;
}

static void server_init(int broken)
{
    memset(&g_model, 0, sizeof g_model);
    g_model.sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    g_model.invoke = test_invoke;
    g_model.input = (ea_proto_tensor){.dtype = EA_PROTO_DTYPE_INT8, .rank = 4, .dims = {1, 4, 4, 1},
                                      .scale = 1.0f / 255.0f, .zero_point = -128, .bytes = 16};
    g_model.output = (ea_proto_tensor){.dtype = EA_PROTO_DTYPE_INT8, .rank = 2, .dims = {1, 3},
                                       .scale = 0.00390625f, .zero_point = -128, .bytes = 3};
    g_model.arena_used = 4096;
    if (broken) {
        g_model.error = "unsupported operator TANH (builtin 28) at op 1";
        g_model.input.rank = 0;
        g_model.output.rank = 0;
    }
    g_io = (ea_proto_io){.board = "host-test", .runtime = "edgeattack-c", .tick_hz = 1000000u,
                         .write = out_write, .ticks = ticks, .timestamp = NULL,
                         .overruns = overruns, .ctx = NULL};
    if (ea_proto_init(&g_proto, &g_io, &g_model, &g_mem, g_max_payload, 2) != 0) {
        fprintf(stderr, "ea_proto_init failed\n");
        exit(3);
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[1] && hexval(s[0]) >= 0 && hexval(s[1]) >= 0 && n < cap) {
        out[n++] = (uint8_t)(hexval(s[0]) * 16 + hexval(s[1]));
        s += 2;
    }
    return n;
}

static void puthex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
}

static void cmd_rx(ea_rx *rx, const uint8_t *bytes, size_t n)
{
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        ea_frame f;
        ea_rx_status st = ea_rx_push(rx, bytes[i], &f);
        if (st == EA_RX_PENDING) {
            continue;
        }
        if (!first) {
            putchar(' ');
        }
        first = 0;
        switch (st) {
        case EA_RX_FRAME:
            if (f.oversize) {
                printf("O:%u:%u:%u:%u", f.version, f.type, f.seq, f.len);
            } else {
                printf("F:%u:%u:%u:", f.version, f.type, f.seq);
                puthex(f.payload, f.len);
            }
            break;
        case EA_RX_EMPTY: printf("E"); break;
        case EA_RX_DROP_COBS: printf("D:cobs"); break;
        case EA_RX_DROP_SHORT: printf("D:short"); break;
        case EA_RX_DROP_LENGTH: printf("D:length"); break;
        case EA_RX_DROP_CRC: printf("D:crc"); break;
        default: printf("?"); break;
        }
    }
    if (first) {
        putchar('-');
    }
    putchar('\n');
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        exit(4);
    }
    return p;
}

int main(int argc, char **argv)
{
    g_max_payload = (uint16_t)(argc > 1 ? atoi(argv[1]) : 256);
    int broken = argc > 2 && strcmp(argv[2], "broken") == 0;
    size_t slots = argc > 3 ? (size_t)atoi(argv[3]) : 8u;
    uint32_t input_slots = argc > 4 ? (uint32_t)atoi(argv[4]) : 4u;
    size_t cache_cap = slots * EA_ERROR_FRAME_MAX; /* one slot per reply: none is larger here */
    size_t rx_cap = (size_t)g_max_payload + EA_FRAME_OVERHEAD;
    g_rx = xmalloc(rx_cap);
    g_reply = xmalloc(2048);
    g_cache = xmalloc(cache_cap);
    g_input = xmalloc(16u * input_slots); /* slot i at 16 i: exact size, ASan sees a slot overrun */
    g_output = xmalloc(3);
    g_mem = (ea_proto_buffers){g_rx, rx_cap, g_reply, 2048, g_cache, cache_cap, g_input, 16u * input_slots,
                               g_output, 3, input_slots};
    server_init(broken);

    uint8_t *rx_buf = xmalloc(rx_cap);
    ea_rx rx;
    ea_rx_init(&rx, rx_buf, rx_cap);

    char *line = xmalloc(MAX_LINE);
    uint8_t *bytes = xmalloc(MAX_LINE / 2);
    while (fgets(line, MAX_LINE, stdin) != NULL) {
        char *arg = strchr(line, ' ');
        arg = arg != NULL ? arg + 1 : line + strlen(line);
        if (strncmp(line, "rx ", 3) == 0) {
            cmd_rx(&rx, bytes, unhex(arg, bytes, MAX_LINE / 2));
        } else if (strncmp(line, "enc ", 4) == 0) {
            char *end;
            unsigned long type = strtoul(arg, &end, 10);
            unsigned long seq = strtoul(end, &end, 10);
            while (*end == ' ') {
                end++;
            }
            size_t n = unhex(end, bytes + EA_FRAME_HEADER, 0xFFFF);
            size_t len = ea_frame_seal(bytes, (uint8_t)type, (uint16_t)seq, (uint16_t)n);
            g_out_len = 0;
            ea_cobs_write_frame(bytes, len, out_write, NULL);
            puthex(g_out_bytes, g_out_len);
            putchar('\n');
        } else if (strncmp(line, "encv ", 5) == 0) {
            char *end;
            unsigned long version = strtoul(arg, &end, 10);
            unsigned long type = strtoul(end, &end, 10);
            unsigned long seq = strtoul(end, &end, 10);
            while (*end == ' ') {
                end++;
            }
            size_t n = unhex(end, bytes + EA_FRAME_HEADER, 0xFFFF);
            size_t len = ea_frame_seal_v(bytes, (uint8_t)version, (uint8_t)type, (uint16_t)seq, (uint16_t)n);
            g_out_len = 0;
            ea_cobs_write_frame(bytes, len, out_write, NULL);
            puthex(g_out_bytes, g_out_len);
            putchar('\n');
        } else if (strncmp(line, "runs", 4) == 0) {
            printf("%lu\n", g_runs);
        } else if (strncmp(line, "crc ", 4) == 0) {
            size_t n = unhex(arg, bytes, MAX_LINE / 2);
            printf("%08x\n", (unsigned)ea_crc32(bytes, n));
        } else if (strncmp(line, "json_f32 ", 9) == 0) {
            unsigned long bits = strtoul(arg, NULL, 16);
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, sizeof f);
            char buf[256];
            ea_strbuf t;
            ea_sb_init(&t, buf, sizeof buf);
            ea_sb_json_f32(&t, f);
            printf("%s\n", t.overflow ? "OVERFLOW" : buf);
        } else if (strncmp(line, "cobsenc ", 8) == 0) {
            size_t n = unhex(arg, bytes, MAX_LINE / 4);
            uint8_t *enc = bytes + MAX_LINE / 4;
            size_t len = ea_cobs_encode(bytes, n, enc, MAX_LINE / 4);
            puthex(enc, len);
            putchar('\n');
        } else if (strncmp(line, "cobsdec ", 8) == 0) {
            size_t n = unhex(arg, bytes, MAX_LINE / 4);
            uint8_t *dec = bytes + MAX_LINE / 4;
            long len = ea_cobs_decode(bytes, n, dec, MAX_LINE / 4);
            if (len < 0) {
                printf("ERR");
            } else {
                puthex(dec, (size_t)len);
            }
            putchar('\n');
        } else if (strncmp(line, "dev ", 4) == 0) {
            size_t n = unhex(arg, bytes, MAX_LINE / 2);
            g_out_len = 0;
            for (size_t i = 0; i < n; i++) {
                ea_proto_feed(&g_proto, bytes[i]);
                if (ea_proto_reset_requested(&g_proto)) {
                    server_init(broken); /* the device restarts; the rest of the input is lost */
                    break;
                }
            }
            if (g_out_len == 0) {
                putchar('-');
            }
            puthex(g_out_bytes, g_out_len);
            putchar('\n');
        } else {
            printf("?\n");
        }
        fflush(stdout);
    }
    free(line);
    free(bytes);
    free(rx_buf);
    free(g_rx);
    free(g_reply);
    free(g_cache);
    free(g_input);
    free(g_output);
    return 0;
}
