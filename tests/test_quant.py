"""quantize_input against independent references: a one-op QUANTIZE model (float32 -> int8, from
the TFLite converter) run by TFLM and by LiteRT's reference kernels, on ties, extremes and every zero
point. LiteRT's default path (XNNPACK) rounds ties to even, so it is the oracle only for saturation."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import UsageError
from edgeattack.quant import quantize_input

K = 1536  # values per case (the model's input length)
# Scales: a power of two (x / scale is exact, so ties really are ties), 1/255 (models fed [0, 1]
# inputs), a decimal and one above 1.
EVERY_ZP_SCALES = [2.0 ** -7, np.float32(1 / 255)]
SOME_ZP_SCALES = [0.1, 3.0]
SOME_ZPS = [-128, -127, -100, -1, 0, 1, 37, 126, 127]
# TFLite's kernels cast round(x / scale) to int32 before adding the zero point: beyond int32 that is
# undefined behaviour (x86 gives INT32_MIN), so the references are compared only within it.
INT32_SAFE = 2.0 ** 31 - 256


@pytest.fixture(scope="module")
def quantize_model():
    """make(scale, zero_point) -> bytes of a model whose only operator is QUANTIZE."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    import edgeattack.tfutil as tu

    tf, keras = tu.tf(), tu.keras()
    model = keras.Sequential([keras.layers.Input((K,)), keras.layers.Dense(2)])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.random((1, K), np.float32)] for _ in range(4))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # float in, int8 inside
    m = fb.ModelT.InitFromPackedBuf(conv.convert(), 0)
    sg = m.subgraphs[0]
    first = sg.operators[0]
    code = m.operatorCodes[first.opcodeIndex]
    assert max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.QUANTIZE
    assert sg.tensors[first.inputs[0]].type == fb.TensorType.FLOAT32
    out = sg.tensors[first.outputs[0]]
    assert out.type == fb.TensorType.INT8
    sg.operators, sg.outputs = [first], list(first.outputs)  # the QUANTIZE alone

    def make(scale: float, zero_point: int) -> bytes:
        out.quantization.scale, out.quantization.zeroPoint = [float(scale)], [int(zero_point)]
        b = flatbuffers.Builder(4096)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    return make


def run_tflm(model: bytes, x: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=64 * 1024)
    interp.set_input(x[None], 0)
    interp.invoke()
    return interp.get_output(0)[0]


def run_litert(model: bytes, x: np.ndarray, resolver: str) -> np.ndarray:
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(model_content=model, num_threads=1,
                                experimental_op_resolver_type=getattr(litert.OpResolverType, resolver))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x[None])
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])[0]


def cases(scale: float, zero_point: int) -> np.ndarray:
    """K float32 inputs for one (scale, zero point): every tie and integer step across the int8
    range and past its ends, the two saturation boundaries, tiny and int32-sized values, noise."""
    k = np.arange(-300, 300, dtype=np.float64)
    steps = [k + 0.5, k]
    for edge in (127 - zero_point, -128 - zero_point):  # where saturation starts, both sides
        steps.append(edge + np.array([-1.5, -0.5, -0.25, 0.25, 0.5, 1.5]))
    steps.append(np.array([1e6, -1e6, 1e9, -1e9, INT32_SAFE - 4096, 4096 - INT32_SAFE]))
    steps.append(np.random.default_rng(zero_point + 1000).uniform(-400, 400, 60))
    x = (np.concatenate(steps) * scale).astype(np.float32)
    x = np.concatenate([x, np.float32([0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-30])])
    # values a float32 step away from the ties (x / scale lands either side of .5)
    near = (k[:100] + 0.5) * scale
    x = np.concatenate([x, np.nextafter(near.astype(np.float32), np.float32(np.inf)),
                        np.nextafter(near.astype(np.float32), np.float32(-np.inf))])
    assert len(x) <= K
    x = np.pad(x, (0, K - len(x)))
    assert np.all(np.abs(x.astype(np.float64) / scale) <= INT32_SAFE)
    return x.astype(np.float32)


def grid():
    for scale in EVERY_ZP_SCALES:
        for zp in range(-128, 128):
            yield scale, zp
    for scale in SOME_ZP_SCALES:
        for zp in SOME_ZPS:
            yield scale, zp


def test_quantize_input_is_tflm_and_litert_reference_quantize(quantize_model):
    checked = 0
    for scale, zp in grid():
        model = quantize_model(scale, zp)
        x = cases(scale, zp)
        ours = quantize_input(x, scale, zp)
        np.testing.assert_array_equal(ours, run_tflm(model, x), err_msg=f"TFLM, scale {scale} zp {zp}")
        np.testing.assert_array_equal(ours, run_litert(model, x, "BUILTIN_REF"),
                                      err_msg=f"LiteRT reference kernels, scale {scale} zp {zp}")
        checked += 1
    assert checked == 2 * 256 + 2 * len(SOME_ZPS)


@pytest.mark.parametrize("zp", [-128, 0, 127])
def test_out_of_range_saturates_to_its_own_side(quantize_model, zp):
    """-1e18 and -inf used to become +127 with zero point -128 (an int64 cast and the zero point
    added before clipping). XNNPACK saturates, so it is the oracle here; ties are left out."""
    x = np.float32([-1e18, -np.inf, -3e38, -2.0 ** 40, 1e18, np.inf, 3e38, 2.0 ** 40])
    want = np.int8([-128] * 4 + [127] * 4)
    np.testing.assert_array_equal(quantize_input(x, 1 / 255, zp), want)
    np.testing.assert_array_equal(quantize_input(x, 1e-30, zp), want)  # x / scale overflows to inf
    xx = np.pad(x, (0, K - len(x)))
    np.testing.assert_array_equal(run_litert(quantize_model(1 / 255, zp), xx, "AUTO")[:len(x)], want)


def test_nan_is_refused_with_its_index():
    x = np.zeros((2, 3), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(UsageError, match=r"NaN \(first at index \[1, 2\]\)"):
        quantize_input(x, 0.1, 0)


def test_xnnpack_rounds_ties_to_even_so_it_is_no_oracle_for_ties(quantize_model):
    """What the docstring and docs/session.md say about LiteRT's default path."""
    x = np.pad(np.float32([0.5, 1.5, 2.5, -0.5, -2.5]), (0, K - 5))
    got = run_litert(quantize_model(1.0, 0), x, "AUTO")[:5]
    np.testing.assert_array_equal(got, [0, 2, 2, 0, -2])
    np.testing.assert_array_equal(quantize_input(x[:5], 1.0, 0), [1, 2, 3, -1, -3])
