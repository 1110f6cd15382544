/* MAX_POOL_2D and AVERAGE_POOL_2D int8 (as TFLM reference_integer_ops::MaxPool / AveragePool): the window
 * is clipped to the input, and the average rounds half away from zero over the clipped count. */
#include "ea_kernels.h"
#include "ea_quant.h"

static int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

/* The filter window of output (oy, ox), clipped to the input: both pools share it. */
typedef struct {
    int32_t x0, y0, fx0, fx1, fy0, fy1;
} pool_window;

static pool_window window_at(const ea_pool_params *p, int32_t in_h, int32_t in_w, int32_t oy, int32_t ox) {
    pool_window w;
    w.x0 = ox * p->stride_w - p->pad_w;
    w.y0 = oy * p->stride_h - p->pad_h;
    w.fx0 = max_i32(0, -w.x0);
    w.fx1 = min_i32(p->filter_w, in_w - w.x0);
    w.fy0 = max_i32(0, -w.y0);
    w.fy1 = min_i32(p->filter_h, in_h - w.y0);
    return w;
}

void ea_max_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
                    int8_t *out) {
    const int32_t in_h = in_dims->h, in_w = in_dims->w, depth = in_dims->c;
    for (int32_t b = 0; b < in_dims->n; ++b)
        for (int32_t oy = 0; oy < out_dims->h; ++oy)
            for (int32_t ox = 0; ox < out_dims->w; ++ox)
                for (int32_t c = 0; c < depth; ++c) {
                    const pool_window win = window_at(p, in_h, in_w, oy, ox);
                    const int32_t x0 = win.x0, y0 = win.y0, fx0 = win.fx0, fx1 = win.fx1, fy0 = win.fy0, fy1 = win.fy1;
                    int32_t mx = -128;
                    for (int32_t fy = fy0; fy < fy1; ++fy)
                        for (int32_t fx = fx0; fx < fx1; ++fx)
                            mx = max_i32(mx, in[((b * in_h + y0 + fy) * in_w + x0 + fx) * depth + c]);
                    out[((b * out_dims->h + oy) * out_dims->w + ox) * depth + c] =
                        (int8_t)ea_clamp(mx, p->act_min, p->act_max);
                }
}

int ea_avg_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
                   int8_t *out) {
    const int32_t in_h = in_dims->h, in_w = in_dims->w, depth = in_dims->c;
    for (int32_t b = 0; b < in_dims->n; ++b)
        for (int32_t oy = 0; oy < out_dims->h; ++oy)
            for (int32_t ox = 0; ox < out_dims->w; ++ox)
                for (int32_t c = 0; c < depth; ++c) {
                    const pool_window win = window_at(p, in_h, in_w, oy, ox);
                    const int32_t x0 = win.x0, y0 = win.y0, fx0 = win.fx0, fx1 = win.fx1, fy0 = win.fy0, fy1 = win.fy1;
                    int32_t acc = 0, count = 0;
                    for (int32_t fy = fy0; fy < fy1; ++fy)
                        for (int32_t fx = fx0; fx < fx1; ++fx) {
                            acc += in[((b * in_h + y0 + fy) * in_w + x0 + fx) * depth + c];
                            count++;
                        }
                    if (count == 0) return -1;
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    out[((b * out_dims->h + oy) * out_dims->w + ox) * depth + c] =
                        (int8_t)ea_clamp(acc, p->act_min, p->act_max);
                }
    return 0;
}
