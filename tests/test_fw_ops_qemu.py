"""Models a user would write with the newer operators, converted by the project's own ptq-int8 step and
run on the qemu-m4 firmware, byte-identical with TFLM: a hand-written atrous (dilated) convolution that
keeps SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND, Keras dilated Conv2D and DepthwiseConv2D layers in a
model without a batch size (which the converter lowers to those operators), concatenated inception-style branches, sigmoid and
hard-swish activations with a squeeze-and-excitation MUL, and a small U-Net-like decoder with
Conv2DTranspose and skip concatenations. One test: each model is one firmware build and one QEMU run."""
from __future__ import annotations

import pytest

from test_fw_qemu import _check_identical, _int8_model, _random_inputs, no_qemu_left, tools  # noqa: F401

pytestmark = pytest.mark.qemu


def _user_models():
    from edgeattack.tfutil import keras, set_seed, tf

    k, t = keras(), tf()
    L = k.layers
    set_seed(0)

    def hard_swish(x):
        return L.Lambda(lambda v: v * t.nn.relu6(v + 3.0) * (1.0 / 6.0))(x)

    def atrous():
        inp = L.Input((12, 12, 3), batch_size=1)
        x = L.Conv2D(6, 3, padding="same", activation="relu")(inp)
        # A dilated (rate 2) VALID 3x3 convolution written as TensorFlow's atrous examples do. Unpadded:
        # TFLM pads SPACE_TO_BATCH_ND with an uninitialised offset (ops/space_to_batch_nd.c).
        x = L.Lambda(lambda v: t.space_to_batch_nd(v, [2, 2], [[0, 0], [0, 0]]))(x)
        x = L.Conv2D(8, 3, padding="valid", activation="relu")(x)
        x = L.Lambda(lambda v: t.batch_to_space(v, [2, 2], [[0, 0], [1, 1]]))(x)
        x = L.GlobalAveragePooling2D()(x)
        return k.Model(inp, L.Dense(4)(x)), (12, 12, 3), {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}

    def dilated():
        # Written the usual way (no batch size), so the converter lowers both dilated layers to
        # SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND; the project's conversion writes the real batch into
        # the shapes between them (tflite/batch_shapes.py). VALID: TFLM's padded SPACE_TO_BATCH_ND
        # pads with an uninitialised offset (ops/space_to_batch_nd.c).
        inp = L.Input((12, 12, 3))
        x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
        x = L.Conv2D(6, 3, dilation_rate=2, padding="valid", activation="relu")(x)
        x = L.DepthwiseConv2D(3, dilation_rate=2, padding="valid", activation="relu")(x)
        x = L.Flatten()(x)
        return k.Model(inp, L.Dense(4)(x)), (12, 12, 3), {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND",
                                                         "DEPTHWISE_CONV_2D"}

    def branches():
        inp = L.Input((10, 10, 3), batch_size=1)
        a = L.Conv2D(4, 1, activation="relu")(inp)
        b = L.Conv2D(6, 3, padding="same", activation="relu")(inp)
        c = L.Conv2D(3, 5, padding="same")(inp)
        d = L.MaxPooling2D(3, strides=1, padding="same")(inp)
        x = L.Concatenate()([a, b, c, d])
        x = L.LeakyReLU(0.1)(x)
        x = L.GlobalAveragePooling2D()(x)
        return k.Model(inp, L.Dense(5, activation="softmax")(x)), (10, 10, 3), {"CONCATENATION", "LEAKY_RELU"}

    def activations():
        inp = L.Input((8, 8, 2), batch_size=1)
        x = hard_swish(L.Conv2D(8, 3, padding="same")(inp))
        s = L.GlobalAveragePooling2D(keepdims=True)(x)
        s = L.Dense(8, activation="sigmoid")(L.Dense(4, activation="relu")(s))
        x = L.Multiply()([x, s])
        x = L.Conv2D(4, 3, padding="same", activation="tanh")(x)
        x = L.Flatten()(x)
        return k.Model(inp, L.Dense(3, activation="sigmoid")(x)), (8, 8, 2), {"HARD_SWISH", "LOGISTIC", "MUL", "TANH"}

    def unet():
        inp = L.Input((16, 16, 1), batch_size=1)
        e1 = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
        e2 = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(e1)
        bott = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(e2)
        d2 = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(bott)
        d2 = L.Conv2D(8, 3, padding="same", activation="relu")(L.Concatenate()([d2, e2]))
        d1 = L.Conv2DTranspose(4, 2, strides=2, padding="same")(d2)
        d1 = L.Conv2D(4, 3, padding="same", activation="relu")(L.Concatenate()([d1, e1]))
        out = L.Conv2D(1, 1, activation="sigmoid")(d1)
        return k.Model(inp, out), (16, 16, 1), {"TRANSPOSE_CONV", "CONCATENATION", "LOGISTIC"}

    return {"atrous": atrous, "dilated": dilated, "branches": branches, "activations": activations, "unet": unet}


def test_user_style_models_on_m4_match_tflm(tools, tmp_path):  # noqa: F811
    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.tflite.reader import read_model

    for name, build in _user_models().items():
        model, shape, needed = build()
        path = _int8_model(model, shape, tmp_path / f"{name}.tflite")
        ops = set(read_model(path.read_bytes()).distinct_ops)
        assert needed <= ops, f"{name}: converted model has {sorted(ops)}, expected {sorted(needed)}"
        with start_qemu_board("qemu-m4", path) as board:
            assert "error" not in board.info, f"{name}: {board.info['error']}"
            _check_identical(board, path, _random_inputs(board.info, 20, seed=3))
