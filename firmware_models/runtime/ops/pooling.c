/* MAX_POOL_2D and AVERAGE_POOL_2D int8 (as TFLM reference_integer_ops::MaxPool / AveragePool): the window
 * is clipped to the input, and the average rounds half away from zero over the clipped count. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_POOL2D = 5 }; /* BuiltinOptions_Pool2DOptions */

EA_KERNEL int32_t ea_avg_pool_s8_get_buffer_size(int32_t out_w, int32_t channels) {
    (void)out_w;
    (void)channels;
    return 0;
}

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

EA_KERNEL void ea_max_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
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

EA_KERNEL int ea_avg_pool_s8(const ea_pool_params *p, const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *out_dims,
                             int8_t *out, void *scratch) {
    (void)scratch;
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

static ea_status prepare_pool(ea_prepare_ctx *c, int is_max) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    const fb_table *o = &c->options;
    int8_t padding = 0, act = 0;
    int32_t sw = 0, sh = 0, fw = 0, fh = 0;
    ea_status st;

    if (c->options_type != BO_POOL2D) return EA_OP_FAIL(c, EA_MSG("missing builtin options"));
    if (fb_i8(c->r, o, 0, 0, EA_MSG("Pool2DOptions.padding"), &padding) || fb_i32(c->r, o, 1, 0, EA_MSG("Pool2DOptions.stride_w"), &sw) ||
        fb_i32(c->r, o, 2, 0, EA_MSG("Pool2DOptions.stride_h"), &sh) || fb_i32(c->r, o, 3, 0, EA_MSG("Pool2DOptions.filter_width"), &fw) ||
        fb_i32(c->r, o, 4, 0, EA_MSG("Pool2DOptions.filter_height"), &fh) ||
        fb_i8(c->r, o, 5, 0, EA_MSG("Pool2DOptions.fused_activation_function"), &act))
        return EA_OP_OPTIONS_FAIL(c);
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->ndim != 4 || out->ndim != 4) return EA_OP_FAIL(c, EA_MSG("input and output must be 4-D"));
    if (in->dims[0] != out->dims[0] || in->dims[3] != out->dims[3]) return EA_OP_FAIL(c, EA_MSG("input and output shapes differ"));
    int32_t oh, ow, pad_h, pad_w;
    if (ea_window(padding, in->dims[1], fh, sh, 1, &oh, &pad_h) || ea_window(padding, in->dims[2], fw, sw, 1, &ow, &pad_w))
        return EA_OP_FAIL(c, EA_MSG("invalid padding, stride or filter size"));
    if (oh != out->dims[1] || ow != out->dims[2]) return EA_OP_FAIL(c, EA_MSG("output size does not match the window arithmetic"));
    /* TF_LITE_ENSURE_NEAR(input scale, output scale, 1e-6): the difference is a float; float > 1e-6
     * (a double) is float > 1e-6f, the float just below it. */
    const float sd = in->scale > out->scale ? in->scale - out->scale : out->scale - in->scale;
    if (!(sd <= 1.0e-6f) || in->zero_point != out->zero_point)
        return EA_OP_FAIL(c, EA_MSG("input and output quantization differ"));
    int32_t act_min, act_max;
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    *EA_OP_PARAMS(ea_pool_params, op) = (ea_pool_params){
        .stride_w = sw, .stride_h = sh, .filter_w = fw, .filter_h = fh, .pad_w = pad_w, .pad_h = pad_h,
        .act_min = act_min, .act_max = act_max,
    };
    if (!is_max) ea_op_request_scratch(c, ea_avg_pool_s8_get_buffer_size(ow, out->dims[3]));
    return EA_OK;
}

EA_PREPARE(max_pool_2d) { return prepare_pool(c, 1); }
EA_PREPARE(average_pool_2d) { return prepare_pool(c, 0); }

EA_INVOKE(max_pool_2d) {
    const ea_dims4 di = ea_dims4_of(&m->tensors[op->in[0]]), dout = ea_dims4_of(&m->tensors[op->out]);
    ea_max_pool_s8(EA_OP_CPARAMS(ea_pool_params, op), &di, (const int8_t *)ea_tensor_data(m, op->in[0]), &dout,
                   (int8_t *)ea_vdata(m, &m->tensors[op->out]));
    return EA_OK;
}

EA_INVOKE(average_pool_2d) {
    const ea_dims4 di = ea_dims4_of(&m->tensors[op->in[0]]), dout = ea_dims4_of(&m->tensors[op->out]);
    if (ea_avg_pool_s8(EA_OP_CPARAMS(ea_pool_params, op), &di, (const int8_t *)ea_tensor_data(m, op->in[0]), &dout,
                       (int8_t *)ea_vdata(m, &m->tensors[op->out]), ea_op_scratch(m, op)))
        return ea_op_runtime_fail(m, op, EA_MSG("a pooling window covers no input"));
    return EA_OK;
}
