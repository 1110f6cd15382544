#include "ea_strbuf.h"

#include <string.h>

#include "ea_msg.h"

#ifdef EA_MSG_CODED
/* The .ea_msg section's bounds (linker script): an EA_MSG text is written as its offset. */
extern const char __ea_msg_start[], __ea_msg_end[];

/* json: inside a JSON string, where the mark must be escaped (\u001f). */
static bool put_coded(ea_strbuf *t, const char *s, bool json)
{
    uintptr_t a = (uintptr_t)s, lo = (uintptr_t)__ea_msg_start;
    if (a < lo || a >= (uintptr_t)__ea_msg_end) {
        return false;
    }
    static const char digits[] = "0123456789abcdef";
    uint32_t off = (uint32_t)(a - lo);
    char tok[10] = {'\\', 'u', '0', '0', '1', 'f', digits[(off >> 12) & 0xFu], digits[(off >> 8) & 0xFu],
                    digits[(off >> 4) & 0xFu], digits[off & 0xFu]};
    if (!json) {
        tok[5] = EA_MSG_MARK;
    }
    ea_sb_put(t, json ? tok : tok + 5, json ? sizeof tok : sizeof tok - 5u);
    return true;
}
#else
#define put_coded(t, s, json) false
#endif

size_t ea_strlen(const char *s)
{
    const char *e = s;
    while (*e != '\0') {
        e++;
        __asm__("" : "+r"(e)); /* or GCC recognises the loop and calls newlib's strlen after all */
    }
    return (size_t)(e - s);
}

void ea_sb_init(ea_strbuf *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    t->overflow = false;
    if (cap > 0u) {
        buf[0] = '\0';
    }
}

void ea_sb_resume(ea_strbuf *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    t->overflow = false;
    if (cap > 0u) {
        while (t->len < cap - 1u && buf[t->len] != '\0') {
            t->len++;
        }
        buf[t->len] = '\0';
    }
}

void ea_sb_put(ea_strbuf *t, const char *s, size_t n)
{
    if (t->overflow || t->cap == 0u || n > t->cap - 1u - t->len) {
        t->overflow = true;
        return;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void ea_sb_raw(ea_strbuf *t, const char *s)
{
    if (!put_coded(t, s, false)) {
        ea_sb_put(t, s, ea_strlen(s));
    }
}

/* n / d, with the remainder in *rem, by binary long division: a 64-bit `/` or `%` would link libgcc's
 * general 64-bit divide (about 750 bytes of flash); printing is not on any hot path. */
static uint64_t div_u64(uint64_t n, uint32_t d, uint32_t *rem)
{
    uint64_t q = 0, r = 0;
    for (int bit = 63; bit >= 0; bit--) {
        r = (r << 1) | ((n >> bit) & 1u);
        if (r >= d) {
            r -= d;
            q |= (uint64_t)1 << bit;
        }
    }
    *rem = (uint32_t)r;
    return q;
}

void ea_sb_fmt(ea_strbuf *t, const char *fmt, size_t n, const int64_t *args)
{
    if (put_coded(t, fmt, false)) {
        for (size_t i = 0; i < n; i++) {
            ea_sb_i64(t, args[i]);
            ea_sb_put(t, "\x1e", 1); /* EA_MSG_ARG */
        }
        return;
    }
    size_t k = 0;
    for (;;) {
        size_t run = 0;
        while (fmt[run] != '\0' && !(fmt[run] == '{' && fmt[run + 1] == '}')) {
            run++;
        }
        ea_sb_put(t, fmt, run);
        if (fmt[run] == '\0') {
            return;
        }
        ea_sb_i64(t, k < n ? args[k] : 0);
        k++;
        fmt += run + 2;
    }
}

void ea_sb_u64(ea_strbuf *t, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        uint32_t digit;
        v = div_u64(v, 10u, &digit);
        tmp[--i] = (char)('0' + (int)digit);
    } while (v != 0u);
    ea_sb_put(t, tmp + i, sizeof tmp - i);
}

void ea_sb_i64(ea_strbuf *t, int64_t v)
{
    if (v < 0) {
        ea_sb_put(t, "-", 1);
        ea_sb_u64(t, (uint64_t)0 - (uint64_t)v);
    } else {
        ea_sb_u64(t, (uint64_t)v);
    }
}

void ea_sb_hex32(ea_strbuf *t, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[10] = {'0', 'x'};
    for (int i = 0; i < 8; i++) {
        tmp[2 + i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    }
    ea_sb_put(t, tmp, sizeof tmp);
}

void ea_sb_json_str(ea_strbuf *t, const char *s)
{
    static const char digits[] = "0123456789abcdef";
    ea_sb_put(t, "\"", 1);
    if (put_coded(t, s, true)) { /* an EA_MSG text: its token */
        s = "";
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ea_sb_put(t, esc, 2);
        } else if (c < 0x20u) {
            char esc[6] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 0xFu]};
            ea_sb_put(t, esc, 6);
        } else {
            ea_sb_put(t, (const char *)&c, 1);
        }
    }
    ea_sb_put(t, "\"", 1);
}

/* Big natural number in base 1e9, least significant limb first. A float32 is m * 2^e with
 * m < 2^24 and -149 <= e <= 104; for e < 0 its value is (m * 5^-e) / 10^-e, and m * 5^149 < 10^112,
 * so 14 limbs hold every case. */
#define LIMB_BASE 1000000000u
#define LIMBS 14

typedef struct {
    uint32_t limb[LIMBS];
    int n;
} bignum;

static void big_mul_small(bignum *b, uint32_t k)
{
    uint64_t carry = 0;
    for (int i = 0; i < b->n; i++) {
        carry = div_u64((uint64_t)b->limb[i] * k + carry, LIMB_BASE, &b->limb[i]);
    }
    while (carry != 0u && b->n < LIMBS) {
        carry = div_u64(carry, LIMB_BASE, &b->limb[b->n++]);
    }
}

/* Decimal digits of b, most significant first, into out (no NUL); returns the count. */
static size_t big_digits(const bignum *b, char *out)
{
    size_t len = 0;
    for (int i = b->n - 1; i >= 0; i--) {
        char tmp[9];
        uint32_t v = b->limb[i];
        for (int k = 8; k >= 0; k--) {
            tmp[k] = (char)('0' + (int)(v % 10u));
            v /= 10u;
        }
        int start = 0;
        if (i == b->n - 1) {
            while (start < 8 && tmp[start] == '0') {
                start++;
            }
        }
        for (int k = start; k < 9; k++) {
            out[len++] = tmp[k];
        }
    }
    return len;
}

void ea_sb_json_f32(ea_strbuf *t, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t exp_field = (bits >> 23) & 0xFFu;
    uint32_t frac = bits & 0x7FFFFFu;
    if (exp_field == 0xFFu) {
        ea_sb_put(t, "null", 4); /* JSON has no NaN or Infinity */
        return;
    }
    if (bits >> 31) {
        ea_sb_put(t, "-", 1);
    }
    uint32_t m = exp_field == 0u ? frac : (frac | 0x800000u);
    int e = exp_field == 0u ? -149 : (int)exp_field - 150;
    if (m == 0u) {
        ea_sb_put(t, "0.0", 3);
        return;
    }
    while ((m & 1u) == 0u) { /* fewer digits to print, same value */
        m >>= 1;
        e++;
    }
    bignum b = {{m % LIMB_BASE, m / LIMB_BASE}, m >= LIMB_BASE ? 2 : 1};
    int frac_digits = 0;
    if (e >= 0) {
        for (int i = 0; i < e; i++) {
            big_mul_small(&b, 2u);
        }
    } else {
        frac_digits = -e;
        for (int i = 0; i < frac_digits; i++) {
            big_mul_small(&b, 5u);
        }
    }
    char digits[LIMBS * 9];
    size_t nd = big_digits(&b, digits);
    if ((size_t)frac_digits >= nd) {
        ea_sb_put(t, "0.", 2);
        for (size_t i = nd; i < (size_t)frac_digits; i++) {
            ea_sb_put(t, "0", 1);
        }
        ea_sb_put(t, digits, nd);
    } else if (frac_digits == 0) {
        ea_sb_put(t, digits, nd);
        ea_sb_put(t, ".0", 2);
    } else {
        ea_sb_put(t, digits, nd - (size_t)frac_digits);
        ea_sb_put(t, ".", 1);
        ea_sb_put(t, digits + nd - (size_t)frac_digits, (size_t)frac_digits);
    }
}

/* f = m * 2^e exactly (m < 2^24). Negative e: round(m * 10^d / 2^-e) with ties to even, in 64 bits
 * (m * 10^9 < 2^54). Non-negative e: the value is an integer of up to 128 bits, kept in base-10^9
 * limbs and doubled e times; its decimals are zeros. */
void ea_sb_f32_fixed(ea_strbuf *t, float f, unsigned decimals)
{
    static const uint32_t pow10[10] = {1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u,
                                       100000000u, 1000000000u};
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t exp = (bits >> 23) & 0xFFu;
    uint32_t frac = bits & 0x7FFFFFu;
    if (decimals > 9u) {
        decimals = 9u;
    }
    if (bits >> 31) {
        ea_sb_put(t, "-", 1);
    }
    if (exp == 0xFFu) {
        ea_sb_raw(t, frac ? "nan" : "inf");
        return;
    }
    uint64_t m = exp ? (frac | 0x800000u) : frac;
    int e = exp ? (int)exp - 150 : -149;
    char digits[48];
    size_t nd = 0;
    if (e < 0) {
        uint64_t num = m * pow10[decimals];
        unsigned k = (unsigned)(-e);
        uint64_t q = 0;
        if (k < 64u) {
            q = num >> k;
            uint64_t r = num & ((1ull << k) - 1u);
            uint64_t half = 1ull << (k - 1u);
            if (r > half || (r == half && (q & 1u))) {
                q++;
            }
        }
        /* q = value * 10^decimals: print it with at least decimals + 1 digits */
        do {
            digits[nd++] = (char)('0' + q % 10u);
            q /= 10u;
        } while (q != 0u || nd < decimals + 1u);
    } else {
        uint32_t limb[5] = {(uint32_t)(m % 1000000000u), (uint32_t)(m / 1000000000u), 0u, 0u, 0u};
        for (int i = 0; i < e; i++) {
            uint32_t carry = 0u;
            for (size_t j = 0; j < 5u; j++) {
                uint32_t v = limb[j] * 2u + carry;
                carry = v >= 1000000000u;
                limb[j] = carry ? v - 1000000000u : v;
            }
        }
        for (unsigned i = 0; i < decimals; i++) {
            digits[nd++] = '0';
        }
        size_t top = 4u;
        while (top > 0u && limb[top] == 0u) {
            top--;
        }
        for (size_t j = 0; j <= top; j++) {
            uint32_t v = limb[j];
            for (int i = 0; i < 9 && (j < top || v != 0u || i == 0); i++) {
                digits[nd++] = (char)('0' + v % 10u);
                v /= 10u;
            }
        }
    }
    /* digits are least significant first; the point goes before the last `decimals` of them */
    char out[52];
    size_t n = 0;
    for (size_t i = nd; i-- > 0;) {
        out[n++] = digits[i];
        if (i == decimals && decimals > 0u) {
            out[n++] = '.';
        }
    }
    ea_sb_put(t, out, n);
}
