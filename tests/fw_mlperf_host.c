/* Host harness for the MLPerf-mode firmware's DUT engine (firmware_models/mlperf) and the score
 * formatting it uses (util ea_sb_f32_fixed), compiled with ASan/UBSan by tests/test_mlperf_firmware.py.
 *
 *   fw_mlperf_host dut MODEL OFFSET [TTY]   the engine with an 8-byte int8 input and 3 scores: reads
 *       commands from TTY (else stdin), writes replies to it (else stdout). The stand-in model's
 *       scores are (q[k] + 128) / 256 of the first three input values q, so replies show exactly what
 *       the tensor holds; the microsecond clock advances 2500 per inference.
 *   fw_mlperf_host fmt DECIMALS            each stdin line a float32 bit pattern in hex: prints
 *       "MISMATCH ..." and exits 1 at the first value formatted differently from C's printf. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ea_dut.h"
#include "ea_strbuf.h"

static int g_out = 1;
static uint64_t g_clock = 1000;
static int8_t g_input[8];

static void io_write(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    while (len > 0) {
        ssize_t n = write(g_out, text, len);
        if (n <= 0) {
            exit(3);
        }
        text += n;
        len -= (size_t)n;
    }
}

static uint64_t io_micros(void *ctx)
{
    (void)ctx;
    return g_clock;
}

static int io_infer(void *ctx)
{
    (void)ctx;
    g_clock += 2500;
    return 0;
}

static size_t io_scores(void *ctx, float *out, size_t cap)
{
    (void)ctx;
    for (size_t k = 0; k < 3 && k < cap; k++) {
        out[k] = (float)(g_input[k] + 128) * (1.0f / 256.0f);
    }
    return cap < 3 ? cap : 3;
}

static int dut(int argc, char **argv)
{
    if (argc < 4) {
        return 2;
    }
    int in = 0;
    if (argc > 4) {
        in = open(argv[4], O_RDWR | O_NOCTTY);
        if (in < 0) {
            return 2;
        }
        g_out = in;
    }
    static char name[100];
    snprintf(name, sizeof name, "edgeattack host sha256=%s",
             "5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f");
    ea_dut_io io = {.write = io_write, .micros = io_micros, .infer = io_infer, .scores = io_scores,
                    .timestamp = NULL, .name_text = name, .model_name = argv[2], .error = NULL, .ctx = NULL};
    static float scores[3];
    static ea_dut d;
    ea_dut_init(&d, &io, (uint8_t *)g_input, sizeof g_input, (uint8_t)atoi(argv[3]), scores, 3);
    unsigned char c;
    while (read(in, &c, 1) == 1) {
        ea_dut_feed(&d, c);
    }
    return 0;
}

static int fmt(char **argv)
{
    unsigned d = (unsigned)atoi(argv[2]);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        unsigned u = (unsigned)strtoul(line, NULL, 16);
        float f;
        memcpy(&f, &u, 4);
        char ours[80];
        ea_strbuf t;
        ea_sb_init(&t, ours, sizeof ours);
        ea_sb_f32_fixed(&t, f, d);
        char libc[400];
        snprintf(libc, sizeof libc, "%.*f", (int)d, (double)f);
        if (t.overflow || strcmp(ours, libc) != 0) {
            printf("MISMATCH %08x ours=%s libc=%s\n", u, ours, libc);
            return 1;
        }
    }
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "fmt") == 0) {
        return fmt(argv);
    }
    if (argc >= 4 && strcmp(argv[1], "dut") == 0) {
        return dut(argc, argv);
    }
    fprintf(stderr, "usage: fw_mlperf_host dut MODEL OFFSET [TTY] | fmt DECIMALS\n");
    return 2;
}
