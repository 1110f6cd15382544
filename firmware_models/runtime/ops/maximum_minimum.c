/* MAXIMUM / MINIMUM int8 with broadcasting (TFLM's MaximumMinimumBroadcastSlow): a comparison of the raw
 * values; TFLM does no requantization and no quantization check. */
#include "ea_ops.h"

static void maximum_row_s8(const void *params, int32_t n, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                           int8_t *out) {
    (void)params;
    for (int32_t i = 0; i < n; ++i) out[i] = a[i * sa] > b[i * sb] ? a[i * sa] : b[i * sb];
}

static void minimum_row_s8(const void *params, int32_t n, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                           int8_t *out) {
    (void)params;
    for (int32_t i = 0; i < n; ++i) out[i] = a[i * sa] < b[i * sb] ? a[i * sa] : b[i * sb];
}

EA_PREPARE(maximum) { return ea_binary_prepare_common(c); }
EA_PREPARE(minimum) { return ea_binary_prepare_common(c); }

EA_INVOKE(maximum) {
    ea_binary_invoke_s8(m, op, maximum_row_s8, NULL);
    return EA_OK;
}

EA_INVOKE(minimum) {
    ea_binary_invoke_s8(m, op, minimum_row_s8, NULL);
    return EA_OK;
}
