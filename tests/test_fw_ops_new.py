"""The operators added to the firmware's C runtime after the first twelve (RELU, RELU6, LEAKY_RELU,
CONCATENATION, MUL, SUB, MAXIMUM, MINIMUM, LOGISTIC, TANH, HARD_SWISH, PADV2, STRIDED_SLICE,
SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND, ARG_MAX, TRANSPOSE_CONV) against TFLM, byte for byte, on random
models of the generator's "ops" family (tools/gen_random_models.py --family ops, cached like the base
suite), each operator in at least 20 models."""
from __future__ import annotations

import json

import pytest

from conftest import require_tool
from test_fwrt_bitexact import _tool

COUNT, SEED, MUTANTS, JOBS = 150, 11, 5, 2
NEW_OPS = ("RELU", "RELU6", "LEAKY_RELU", "CONCATENATION", "MUL", "SUB", "MAXIMUM", "MINIMUM", "LOGISTIC", "TANH",
           "HARD_SWISH", "PADV2", "STRIDED_SLICE", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "ARG_MAX",
           "TRANSPOSE_CONV")


@pytest.fixture(scope="module")
def ops_models():
    require_tool("cc", "make")
    import tflite_micro  # noqa: F401  (the oracle)
    return _tool("fwrt_bitexact").ensure_models(COUNT, SEED, MUTANTS, JOBS, family="ops")


def test_every_new_operator_is_in_at_least_20_models(ops_models):
    manifest = json.loads((ops_models / "manifest.json").read_text())
    counts = {op: sum(op in m["builtins"] for m in manifest["models"]) for op in NEW_OPS}
    assert all(n >= 20 for n in counts.values()), counts
    # More than three inputs reach the runtime (CONCATENATION of up to 5, STRIDED_SLICE, TRANSPOSE_CONV).
    assert any(layer.get("inputs", 0) > 3 for m in manifest["models"] for layer in m["layers"])


def test_new_operators_match_tflm_byte_for_byte(ops_models):
    res = _tool("fwrt_bitexact").compare(ops_models)
    assert res["models"] >= COUNT - 5
    detail = "\n".join(json.dumps(f)[:400] for f in res["failures"][:10])
    assert not res["failures"], f"{len(res['failures'])} of {res['models']} models differ from TFLM:\n{detail}"
    assert res["matching_outputs"] == res["inputs"]


def _convert(build, shape):
    import numpy as np

    from edgeattack.compression.convert import to_tflite
    from edgeattack.tflite.align import align_16
    from edgeattack.tfutil import keras, set_seed, tf

    set_seed(0)
    model = build(keras(), tf())
    x = np.random.default_rng(0).random((16, *shape), dtype=np.float32)
    return align_16(to_tflite(model, "int8", x))


def test_padded_space_to_batch_pads_with_the_zero_point_as_litert():
    """TFLM pads SPACE_TO_BATCH_ND with an offset its Prepare never sets (arena garbage, 0 when fresh);
    the firmware pads with the output zero point (real 0.0), as LiteRT's reference kernel does."""
    import numpy as np

    from edgeattack.firmware.hostrt import run_host
    from edgeattack.tflite.reader import read_model
    from edgeattack.tflite.runtimes import LiteRTRunner

    def build(k, t):
        inp = k.layers.Input((5, 5, 2), batch_size=1)
        x = k.layers.Conv2D(3, 1)(inp)  # an activation with a non-zero zero point
        return k.Model(inp, k.layers.Lambda(lambda v: t.space_to_batch_nd(v, [2, 2], [[1, 0], [0, 1]]))(x))

    tfl = _convert(build, (5, 5, 2))
    info = read_model(tfl)
    assert "SPACE_TO_BATCH_ND" in info.distinct_ops
    assert info.output_tensors[0].zero_point != 0
    xs = np.random.default_rng(1).integers(-128, 128, size=(6, 1, 5, 5, 2), dtype=np.int8)
    lite = LiteRTRunner(tfl, resolver="reference")
    ref = np.stack([np.asarray(lite.invoke_raw(x)) for x in xs])
    got = run_host(tfl, xs)
    assert np.array_equal(got.reshape(ref.shape), ref)
    assert (got == info.output_tensors[0].zero_point).any()  # the padding is there


def _batch_free_dilated(k, t, padding="valid"):
    inp = k.layers.Input((12, 12, 3))  # no batch size: the converter lowers the dilation
    x = k.layers.Conv2D(4, 3, dilation_rate=2, padding=padding, activation="relu")(inp)
    x = k.layers.DepthwiseConv2D(3, dilation_rate=2, padding=padding, activation="relu")(x)
    return k.Model(inp, k.layers.Flatten()(x))


def test_raw_batch_free_dilated_conv_is_refused_naming_the_operator():
    """The converter's own output for a batch-free dilated convolution stores batch 1 between
    SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND where the data has 4 batches (TFLM then writes past the
    tensor): the firmware's loader refuses such a file, from wherever it came, with the operator's name."""
    import numpy as np

    from edgeattack.errors import EdgeAttackError
    from edgeattack.firmware.hostrt import host_plan
    from edgeattack.tflite.reader import read_model
    from edgeattack.tfutil import keras, set_seed, tf

    set_seed(0)
    conv = tf().lite.TFLiteConverter.from_keras_model(_batch_free_dilated(keras(), tf()))
    conv.optimizations = [tf().lite.Optimize.DEFAULT]
    x = np.random.default_rng(0).random((8, 12, 12, 3), dtype=np.float32)
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    conv.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf().int8
    raw = bytes(conv.convert())
    info = read_model(raw)
    assert {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"} <= set(info.distinct_ops)
    s2b = next(op for op in info.operators if op.name == "SPACE_TO_BATCH_ND")
    assert info.tensors[s2b.outputs[0]].shape[0] == 1  # the stored batch the data does not have
    with pytest.raises(EdgeAttackError, match="SPACE_TO_BATCH_ND at op 0: output shape does not match"):
        host_plan(raw)


def test_batch_free_dilated_convs_get_their_real_batch_and_match_tflm():
    """The project's conversion writes block_h * block_w into the stored batch of every tensor between
    SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND (tflite/batch_shapes.py): the firmware then runs the model,
    byte-identical with TFLM (VALID) and with LiteRT's reference kernels (VALID and SAME; TFLM pads
    SPACE_TO_BATCH_ND with an uninitialised offset, see above)."""
    import numpy as np

    from edgeattack.firmware.hostrt import run_host
    from edgeattack.tflite.batch_shapes import fix_space_to_batch_shapes
    from edgeattack.tflite.reader import read_model
    from edgeattack.tflite.runtimes import LiteRTRunner, TFLMRunner

    xs = np.random.default_rng(1).integers(-128, 128, size=(6, 1, 12, 12, 3), dtype=np.int8)
    for padding in ("valid", "same"):
        tfl = _convert(lambda k, t: _batch_free_dilated(k, t, padding), (12, 12, 3))
        info = read_model(tfl)
        assert {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "DEPTHWISE_CONV_2D"} <= set(info.distinct_ops)
        for op in info.operators:
            if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                assert info.tensors[op.outputs[0]].shape[0] == 4, padding
        assert fix_space_to_batch_shapes(tfl) == (tfl, [])  # already fixed: nothing more to do
        got = run_host(tfl, xs)
        lite = LiteRTRunner(tfl, resolver="reference")
        ref = np.stack([np.asarray(lite.invoke_raw(x)) for x in xs])
        assert np.array_equal(got.reshape(ref.shape), ref), padding
        if padding == "valid":
            tflm = TFLMRunner(tfl)
            assert np.array_equal(got.reshape(ref.shape), np.stack([np.asarray(tflm.invoke_raw(x)) for x in xs]))


def test_batch_shapes_leave_models_with_real_batches_unchanged():
    """With a batch size the converter keeps a dilated convolution whole: nothing to fix, the same
    bytes come back."""
    from edgeattack.tflite.batch_shapes import fix_space_to_batch_shapes
    from edgeattack.tflite.reader import read_model

    def build(k, t):
        inp = k.layers.Input((12, 12, 3), batch_size=1)
        return k.Model(inp, k.layers.Conv2D(4, 3, dilation_rate=2, padding="valid")(inp))

    tfl = _convert(build, (12, 12, 3))
    assert "SPACE_TO_BATCH_ND" not in read_model(tfl).distinct_ops
    assert fix_space_to_batch_shapes(tfl) == (tfl, [])


def test_elementwise_tables_match_tflm_on_every_input_value():
    """LOGISTIC, TANH, HARD_SWISH and LEAKY_RELU on 512 elements run through their 256-entry tables
    (ea_s8_map: EA_S8_MAP_TABLE_MIN is 256); every int8 input value, in each of the ops' positions,
    gives TFLM's output byte for byte, and so does the same model with 8 elements (no table)."""
    import numpy as np

    from edgeattack.firmware.hostrt import run_host
    from edgeattack.tflite.reader import read_model
    from edgeattack.tflite.runtimes import TFLMRunner

    def model_for(width):
        def build(k, t):
            inp = k.layers.Input((width,), batch_size=1)
            a = k.layers.Activation("sigmoid")(inp)
            b = k.layers.Activation("tanh")(inp)
            c = k.layers.Lambda(lambda v: v * t.nn.relu6(v + 3.0) * (1.0 / 6.0))(inp)
            d = k.layers.LeakyReLU(0.2)(inp)
            return k.Model(inp, k.layers.Concatenate()([a, b, c, d]))
        return _convert(build, (width,))

    for width in (512, 8):  # 512: through the tables; 8: below EA_S8_MAP_TABLE_MIN, computed per element
        data = model_for(width)
        ops = set(read_model(data).distinct_ops)
        assert {"LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU"} <= ops, ops
        every = np.resize(np.arange(-128, 128, dtype=np.int8), max(width, 256))
        xs = np.stack([np.roll(every, s)[:width] for s in range(0, 256, 37)])[:, None, :]  # every value at each spot
        got = run_host(data, xs)
        runner = TFLMRunner(data)
        want = np.stack([np.asarray(runner.invoke_raw(x[None])).reshape(got.shape[1:]) for x in xs])
        assert np.array_equal(got, want), (width, int((got != want).sum()))
