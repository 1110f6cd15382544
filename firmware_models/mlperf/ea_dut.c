#include "ea_dut.h"

#include <string.h>

#include "ea_strbuf.h"

static void say(ea_dut *d, const char *s)
{
    d->io.write(d->io.ctx, s, strlen(s));
}

/* Lines with numbers are built in a bounded buffer and written whole. */
typedef struct {
    ea_strbuf sb;
    char text[96];
} line_t;

static void line_start(line_t *l, const char *prefix)
{
    ea_sb_init(&l->sb, l->text, sizeof l->text);
    ea_sb_raw(&l->sb, prefix);
}

static void line_end(ea_dut *d, line_t *l)
{
    ea_sb_raw(&l->sb, "\r\n");
    d->io.write(d->io.ctx, l->text, l->sb.len);
}

static void say_u64(ea_dut *d, const char *prefix, uint64_t v, const char *suffix)
{
    line_t l;
    line_start(&l, prefix);
    ea_sb_u64(&l.sb, v);
    ea_sb_raw(&l.sb, suffix);
    line_end(d, &l);
}

static void error_with(ea_dut *d, const char *what, const char *arg)
{
    line_t l;
    line_start(&l, "e-[");
    ea_sb_raw(&l.sb, what);
    if (arg != NULL) {
        /* at most 40 characters of the culprit, so the line always fits */
        char cut[41];
        size_t n = strlen(arg) < 40u ? strlen(arg) : 40u;
        memcpy(cut, arg, n);
        cut[n] = '\0';
        ea_sb_raw(&l.sb, cut);
    }
    ea_sb_raw(&l.sb, "]");
    line_end(d, &l);
}

static const char *next_token(char **p)
{
    while (**p == ' ') {
        (*p)++;
    }
    if (**p == '\0') {
        return NULL;
    }
    const char *tok = *p;
    while (**p != '\0' && **p != ' ') {
        (*p)++;
    }
    if (**p == ' ') {
        *(*p)++ = '\0';
    }
    return tok;
}

/* A decimal count: 0..2^31-1, digits only; -1 otherwise. */
static long parse_count(const char *s)
{
    long v = 0;
    if (s == NULL || *s == '\0') {
        return -1;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 214748364L) {
            return -1;
        }
        v = v * 10 + (*s - '0');
    }
    return v;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void db_load(ea_dut *d, const char *arg)
{
    long n = parse_count(arg);
    if (n <= 0) {
        error_with(d, "db load needs a byte count > 0, got ", arg ? arg : "nothing");
        return;
    }
    if ((unsigned long)n > d->cap) {
        line_t l;
        line_start(&l, "e-[db buffer holds ");
        ea_sb_u64(&l.sb, d->cap);
        ea_sb_raw(&l.sb, " bytes, ");
        ea_sb_u64(&l.sb, (uint64_t)n);
        ea_sb_raw(&l.sb, " requested]");
        line_end(d, &l);
        d->size = 0; /* a refused load leaves no load in progress */
        d->pos = 0;
        return;
    }
    d->size = (size_t)n;
    d->pos = 0;
    say_u64(d, "m-[Expecting ", (uint64_t)n, " bytes]");
}

static void db_print(ea_dut *d)
{
    static const char hex[] = "0123456789abcdef";
    char text[9 + 8 * 3 + 2];
    for (size_t i = 0; i < d->size; i += 8u) {
        size_t n = 0;
        memcpy(text, "m-buffer-", 9);
        n = 9;
        for (size_t j = i; j < d->size && j < i + 8u; j++) {
            uint8_t b = (uint8_t)(d->buf[j] + d->offset);
            if (j > i) {
                text[n++] = '-';
            }
            text[n++] = hex[b >> 4];
            text[n++] = hex[b & 15u];
        }
        text[n++] = '\r';
        text[n++] = '\n';
        d->io.write(d->io.ctx, text, n);
    }
}

static void db_data(ea_dut *d, const char *digits)
{
    size_t n = strlen(digits);
    if (d->size == 0u) {
        say(d, "e-[db data without db load]\r\n");
        return;
    }
    if (n & 1u) {
        say(d, "e-[Odd number of hex digits]\r\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (hex_value(digits[i]) < 0) {
            char bad[2] = {digits[i], '\0'};
            error_with(d, "Invalid hex digit ", bad);
            return;
        }
    }
    for (size_t i = 0; i < n && d->pos < d->size; i += 2u) {
        uint8_t b = (uint8_t)(hex_value(digits[i]) << 4 | hex_value(digits[i + 1u]));
        d->buf[d->pos++] = (uint8_t)(b - d->offset);
        if (d->pos == d->size) {
            say(d, "m-load-done\r\n"); /* digits beyond the announced size are ignored */
        }
    }
}

static void results(ea_dut *d)
{
    size_t n = d->io.scores(d->io.ctx, d->scores, d->scores_cap);
    say(d, "m-results-[");
    for (size_t i = 0; i < n; i++) {
        char text[64];
        ea_strbuf sb;
        ea_sb_init(&sb, text, sizeof text);
        if (i > 0u) {
            ea_sb_raw(&sb, ",");
        }
        ea_sb_f32_fixed(&sb, d->scores[i], 3u);
        d->io.write(d->io.ctx, text, sb.len);
    }
    say(d, "]\r\n");
}

static void lap(ea_dut *d)
{
    say_u64(d, "m-lap-us-", d->io.micros(d->io.ctx), "");
}

static int run(ea_dut *d, long n)
{
    for (long i = 0; i < n; i++) {
        d->inferences++;
        if (d->io.infer(d->io.ctx) != 0) {
            return -1;
        }
    }
    return 0;
}

static void infer(ea_dut *d, const char *n_arg, const char *w_arg)
{
    long n = n_arg ? parse_count(n_arg) : 1;
    long w = w_arg ? parse_count(w_arg) : 10; /* the protocol's default warm-ups */
    if (n <= 0) {
        error_with(d, "Inference iterations must be >0, got ", n_arg);
        return;
    }
    if (w < 0) {
        error_with(d, "Inference warmup must be >=0, got ", w_arg);
        return;
    }
    if (d->io.error != NULL) {
        error_with(d, "model not loaded: ", d->io.error);
        return;
    }
    if (d->size != d->cap || d->pos != d->size) {
        /* never infer on a partial or stale tensor: say so and stop */
        line_t l;
        line_start(&l, "e-[Input db has ");
        ea_sb_u64(&l.sb, d->pos);
        ea_sb_raw(&l.sb, " elements, expected ");
        ea_sb_u64(&l.sb, d->cap);
        ea_sb_raw(&l.sb, "]");
        line_end(d, &l);
        return;
    }
    say_u64(d, "m-warmup-start-", (uint64_t)w, "");
    if (run(d, w) != 0) {
        say(d, "e-[inference failed]\r\n");
        return;
    }
    say(d, "m-warmup-done\r\n");
    say_u64(d, "m-infer-start-", (uint64_t)n, "");
    if (d->io.timestamp) {
        d->io.timestamp(d->io.ctx, 1);
    }
    lap(d);
    int rc = run(d, n);
    lap(d);
    if (d->io.timestamp) {
        d->io.timestamp(d->io.ctx, 0);
    }
    if (rc != 0) {
        say(d, "e-[inference failed]\r\n");
        return;
    }
    say(d, "m-infer-done\r\n");
    results(d);
}

static void command(ea_dut *d, char *text)
{
    char *p = text;
    const char *cmd = next_token(&p);
    if (cmd == NULL) {
        say(d, "e-[Empty command]\r\n");
    } else if (strcmp(cmd, "name") == 0) {
        say(d, "m-name-dut-[");
        say(d, d->io.name_text);
        say(d, "]\r\n");
    } else if (strcmp(cmd, "profile") == 0) {
        say(d, "m-profile-[edgeattack MLPerf Tiny DUT 1]\r\nm-model-[");
        say(d, d->io.model_name);
        say(d, "]\r\n");
    } else if (strcmp(cmd, "timestamp") == 0) {
        lap(d);
    } else if (strcmp(cmd, "results") == 0) {
        results(d);
    } else if (strcmp(cmd, "infer") == 0) {
        const char *n = next_token(&p);
        const char *w = next_token(&p);
        infer(d, n, w);
    } else if (strcmp(cmd, "db") == 0) {
        const char *sub = next_token(&p);
        if (sub == NULL) {
            say(d, "e-[db needs load, print or hex data]\r\n");
        } else if (strcmp(sub, "load") == 0) {
            db_load(d, next_token(&p));
        } else if (strcmp(sub, "print") == 0) {
            db_print(d);
        } else {
            db_data(d, sub);
        }
    } else {
        error_with(d, "Unknown command: ", cmd);
    }
    say(d, "m-ready\r\n");
}

void ea_dut_init(ea_dut *d, const ea_dut_io *io, uint8_t *input, size_t input_bytes, uint8_t offset,
                 float *scores, size_t scores_cap)
{
    memset(d, 0, sizeof *d);
    d->io = *io;
    d->buf = input;
    d->cap = input_bytes;
    d->offset = offset;
    d->scores = scores;
    d->scores_cap = scores_cap;
}

void ea_dut_feed(ea_dut *d, uint8_t c)
{
    if (c == '%') {
        d->line[d->len] = '\0';
        if (d->too_long) {
            say(d, "e-[Command too long]\r\nm-ready\r\n");
        } else {
            command(d, d->line);
        }
        d->len = 0;
        d->too_long = 0;
        return;
    }
    if (c == '\r' || c == '\n') {
        return; /* a terminal's line ends are not part of a command */
    }
    if (d->len < EA_DUT_LINE) {
        d->line[d->len++] = (char)c;
    } else {
        d->too_long = 1;
    }
}
