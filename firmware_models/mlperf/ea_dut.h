/* MLPerf Tiny's device-under-test protocol (the EEMBC / MLCommons text protocol MLCommons' runner
 * speaks; docs/mlperf.md), written from its description: commands are text ending in '%', replies
 * are CR LF lines, each command's reply ends with "m-ready", errors are "e-[...]". No printf: every
 * number goes through util/'s string builder.
 *
 * The db buffer is the model's input tensor itself: a received byte b is stored as the int8 value
 * (b - input_offset) mod 256 and `db print` shows it as (value + input_offset) mod 256, so the
 * buffer reads back exactly as it was sent while the tensor holds what the benchmark's reference
 * firmware would give the model (offset 128 for image classification and visual wake words, whose
 * reference takes uint8 bytes; 0 for keyword spotting). */
#ifndef EA_DUT_H
#define EA_DUT_H

#include <stddef.h>
#include <stdint.h>

#define EA_DUT_LINE 128 /* longest command kept; longer ones are refused whole */

typedef struct {
    void (*write)(void *ctx, const char *text, size_t len);
    uint64_t (*micros)(void *ctx);        /* a free-running microsecond clock */
    int (*infer)(void *ctx);              /* one inference on the input tensor; 0 when it ran */
    /* the scores `results` prints: the dequantized outputs; returns how many (at most cap) */
    size_t (*scores)(void *ctx, float *out, size_t cap);
    void (*timestamp)(void *ctx, int level); /* the window's GPIO, or NULL */
    const char *name_text;  /* inside m-name-dut-[...]: vendor, board, model SHA-256 */
    const char *model_name; /* m-model-[...]: ic01, kws01, vww01, ad01 or ea-custom */
    const char *error;      /* the model failed to load: every infer answers this */
    void *ctx;
} ea_dut_io;

typedef struct {
    ea_dut_io io;
    uint8_t *buf;        /* the input tensor */
    size_t cap;          /* its bytes */
    size_t size;         /* bytes announced by `db load` (0: none) */
    size_t pos;          /* bytes received since */
    uint8_t offset;
    float *scores;
    size_t scores_cap;
    uint64_t inferences; /* run since boot, warm-ups included */
    char line[EA_DUT_LINE + 1];
    size_t len;
    int too_long;
} ea_dut;

void ea_dut_init(ea_dut *d, const ea_dut_io *io, uint8_t *input, size_t input_bytes, uint8_t offset,
                 float *scores, size_t scores_cap);
/* One received byte; a '%' runs the command collected so far and answers it. */
void ea_dut_feed(ea_dut *d, uint8_t c);

#endif
