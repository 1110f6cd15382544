"""prune-channels: the rebuilt model is narrower and computes exactly what the original computes with
the removed channels zeroed (before fine-tuning), on plain convs + Flatten + Dense, depthwise
convs, and residual ADDs; the compressed int8 artifact is really smaller; bad input is one line."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import UsageError

pytest_plugins = ["fixtures_compress"]


def _zoo(name, width, seed=0):
    """A zoo model with random biases and BatchNorm statistics, so zeroing a channel matters."""
    from edgeattack import tfutil, zoo

    tfutil.set_seed(seed)
    m = zoo.build_model(name, width=width)
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        cls = type(layer).__name__
        ws = layer.get_weights()
        if cls == "BatchNormalization":  # gamma, beta, moving mean, moving variance
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if i in (0, 3)
                               else rng.normal(0, 0.3, w.shape).astype(np.float32)
                               for i, w in enumerate(ws)])
        elif cls in ("Conv2D", "Dense") and len(ws) == 2:
            layer.set_weights([ws[0], rng.normal(0, 0.1, ws[1].shape).astype(np.float32)])
    return m


def _masked(model, details):
    """The original with each removed channel zeroed where it is made: its filter and bias, its
    BatchNorm scale and offset, its depthwise filter. Consumers are left alone, so this checks the
    rebuild's input-side cuts (Conv2D input channels, Flatten -> Dense rows) independently."""
    from edgeattack.tfutil import keras

    m = keras().models.clone_model(model)
    m.set_weights(model.get_weights())
    for space in details["spaces"]:
        gone = np.asarray(space["removed"])
        for name in space["producers"] + space["members"]:
            layer = m.get_layer(name)
            ws = layer.get_weights()
            if type(layer).__name__ == "DepthwiseConv2D":
                ws[0][:, :, gone, :] = 0
                ws[1:] = [np.where(np.isin(np.arange(len(w)), gone), 0, w) for w in ws[1:]]
            elif type(layer).__name__ == "BatchNormalization":
                ws[0][gone] = 0  # gamma
                ws[1][gone] = 0  # beta: the channel's output is then exactly 0
            else:
                ws[0][..., gone] = 0
                if len(ws) > 1:
                    ws[1][gone] = 0
            layer.set_weights(ws)
    return m


def _logits(model, x):
    from edgeattack.tfutil import keras

    k = keras()
    dense = [l for l in model.layers if type(l) is k.layers.Dense][-1]
    return k.Model(model.input, dense.output).predict(x, verbose=0)


@pytest.mark.parametrize("name, width, joined", [("cnn-digits", 1.0, False),
                                                 ("mobilenet-tiny", 0.5, False),
                                                 ("resnet8", 0.25, True)])
def test_rebuilt_model_equals_the_masked_original(name, width, joined):
    from edgeattack.compression.channels import prune_channels

    model = _zoo(name, width)
    new, details = prune_channels(model, 0.5)
    # narrower: every pruned producer keeps half its filters/units, BatchNorm and depthwise follow
    for space in details["spaces"]:
        assert space["channels_after"] == space["channels_before"] - round(space["channels_before"] / 2)
        for n in space["producers"] + space["members"]:
            layer = new.get_layer(n)
            axis = 2 if type(layer).__name__ == "DepthwiseConv2D" else -1
            assert layer.get_weights()[0].shape[axis] == space["channels_after"], n
    assert details["model_params_after"] < 0.5 * details["model_params_before"]
    assert any(s["joined"] for s in details["spaces"]) == joined
    kinds = {type(new.get_layer(n)).__name__ for s in details["spaces"] for n in s["members"]}
    if name == "mobilenet-tiny":
        assert kinds == {"BatchNormalization", "DepthwiseConv2D"}
    x = np.random.default_rng(1).random((8, *model.input_shape[1:])).astype(np.float32)
    masked = _logits(_masked(model, details), x)
    assert np.abs(masked - _logits(model, x)).max() > 1e-3  # the removed channels mattered
    np.testing.assert_allclose(_logits(new, x), masked, atol=2e-5, rtol=1e-4)


def test_sequential_model_with_batchnorm_after_flatten_and_dense():
    from edgeattack.compression.channels import prune_channels
    from edgeattack.tfutil import keras

    k = keras()
    m = k.Sequential([k.layers.InputLayer((6, 6, 2)), k.layers.Conv2D(6, 3, activation="relu"),
                      k.layers.BatchNormalization(), k.layers.Flatten(),
                      k.layers.Dense(10, activation="relu"), k.layers.BatchNormalization(),
                      k.layers.Dense(3)])
    rng = np.random.default_rng(0)
    m.set_weights([rng.uniform(0.1, 1.0, w.shape).astype(np.float32) for w in m.get_weights()])
    new, details = prune_channels(m, 0.5)
    assert [(s["channels_after"], len(s["members"])) for s in details["spaces"]] == [(3, 1), (5, 1)]
    x = rng.random((8, 6, 6, 2)).astype(np.float32)
    masked = _masked(m, details).predict(x, verbose=0)
    assert np.abs(masked - m.predict(x, verbose=0)).max() > 1e-3
    np.testing.assert_allclose(new.predict(x, verbose=0), masked, atol=2e-5, rtol=1e-4)


def test_unprunable_spaces_are_skipped_with_a_reason_or_refused():
    from edgeattack.compression.channels import prune_channels
    from edgeattack.tfutil import keras

    k = keras()
    inp = k.Input((8, 8, 1))
    a = k.layers.Conv2D(4, 3, padding="same", name="a")(inp)
    b = k.layers.Conv2D(4, 3, padding="same", name="b")(inp)
    c = k.layers.Concatenate(name="cat")([a, b])
    d = k.layers.Conv2D(6, 3, padding="same", activation="relu", name="d")(c)
    out = k.layers.Dense(3, name="head")(k.layers.GlobalAveragePooling2D()(d))
    m = k.Model(inp, out)
    new, details = prune_channels(m, 0.5)
    assert [s["producers"] for s in details["spaces"]] == [["d"]]
    reasons = {tuple(s["layers"]): s["reason"] for s in details["skipped"]}
    assert reasons[("a",)] == "feeds Concatenate cat" and reasons[("head",)] == "reaches the model output"
    assert new.get_layer("head").get_weights()[0].shape == (3, 3)
    with pytest.raises(UsageError, match=r"layer 'a' cannot be pruned: feeds Concatenate cat"):
        prune_channels(m, 0.5, layers=["a"])


def test_given_scores_prune_only_the_scored_layer_lowest_first():
    from edgeattack.compression.channels import prune_channels

    model = _zoo("cnn-digits", 1.0)
    conv2 = [l.name for l in model.layers if type(l).__name__ == "Conv2D"][1]
    scores = np.arange(32, dtype=float)[::-1]  # channel 31 is the least important
    new, details = prune_channels(model, 0.25, score={conv2: scores})
    (space,) = details["spaces"]
    assert space["producers"] == [conv2] and space["removed"] == list(range(24, 32))
    assert new.get_layer(conv2).get_weights()[0].shape[-1] == 24


@pytest.mark.parametrize("step, message", [
    ({"step": "prune-channels", "ratio": 0}, "'ratio' must be in (0, 1)"),
    ({"step": "prune-channels", "ratio": 1}, "'ratio' must be < 1"),
    ({"step": "prune-channels", "ratio": -0.1}, "'ratio' must be >= 0"),
    ({"step": "prune-channels", "score": "taylor"}, "'score' must be one of l1, l2"),
])
def test_bad_parameters_are_one_line(step, message):
    from edgeattack.compression.recipe import load_recipe

    with pytest.raises(UsageError) as e:
        load_recipe([step])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_python_entry_point_refuses_bad_ratio_and_score():
    from edgeattack.compression.channels import prune_channels

    model = _zoo("cnn-digits", 0.25)
    conv1 = [l.name for l in model.layers if type(l).__name__ == "Conv2D"][0]
    with pytest.raises(UsageError, match=r"ratio must be in \(0, 1\)"):
        prune_channels(model, 1.5)
    with pytest.raises(UsageError, match="unknown score 'taylor'"):
        prune_channels(model, 0.5, "taylor")
    with pytest.raises(UsageError, match="must be 4 finite numbers"):
        prune_channels(model, 0.5, {conv1: [1.0, 2.0]})
    with pytest.raises(UsageError, match="layer 'nope' has no channel space"):
        prune_channels(model, 0.5, layers=["nope"])


def test_int8_artifact_is_smaller_with_fewer_macs(digits_model, digits_ptq, tmp_path_factory):
    from fixtures_compress import compress_digits

    res = compress_digits(digits_model, tmp_path_factory, "prune-channels",
                          [{"step": "prune-channels", "ratio": 0.5, "epochs": 2}])
    m, base = res.manifest, digits_ptq.manifest
    assert m["recipe"]["steps"][-1]["step"] == "ptq-int8"
    assert m["weight_buffer_bytes"] <= 0.6 * base["weight_buffer_bytes"]
    assert m["macs"] <= 0.6 * base["macs"]
    assert m["accuracy"]["tflm"] >= base["accuracy"]["tflm"] - 0.03
    details = m["steps"][0]["details"]
    assert [s["channels_after"] for s in details["spaces"]] == [8, 16, 32]
