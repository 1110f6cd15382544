"""Low-rank layouts are exact: at full rank (or with the kernel replaced by its own CP
reconstruction) the factorized layers compute what the original layer computes, for strided and
'same'-padded convolutions too (TF pads a strided conv asymmetrically)."""
from __future__ import annotations

import numpy as np
import pytest

FULL = {"energy": None, "ratio": 1.0, "max_param_ratio": 1e9}


def _single_conv(k, hw, stride, padding):
    inp = k.Input((hw, hw, 4))
    x = k.layers.Conv2D(6, 3, strides=stride, padding=padding, activation="relu", name="c")(inp)
    return k.Model(inp, k.layers.Flatten()(x))


def _max_diff(a, b, hw):
    x = np.random.default_rng(0).random((3, hw, hw, 4)).astype(np.float32)
    return float(np.abs(a.predict(x, verbose=0) - b.predict(x, verbose=0)).max())


@pytest.mark.parametrize("stride, padding, hw", [(1, "same", 9), (2, "same", 10), (2, "same", 9),
                                                 (2, "valid", 9)])
def test_tucker2_at_full_rank_is_exact(stride, padding, hw):
    from edgeattack.compression import lowrank
    from edgeattack.tfutil import keras

    k = keras()
    m = _single_conv(k, hw, stride, padding)
    layer = m.get_layer("c")
    *w, info = lowrank.factor_tucker2(layer.get_weights()[0], 6, FULL)
    assert info["rank"] == [4, 6] and info["energy_kept"] == pytest.approx(1.0)
    new = lowrank.rebuild(m, {"c": lowrank._factor_entries(layer.get_config(), "Conv2D", "tucker",
                                                           tuple(w), (hw, hw))})
    assert [l.name for l in new.layers][1:4] == ["c_lr_in", "c_lr_core", "c"]
    assert _max_diff(m, new, hw) < 1e-5


@pytest.mark.parametrize("stride, padding, hw", [(1, "same", 9), (2, "same", 10), (2, "same", 9),
                                                 (2, "valid", 9)])
def test_cp_layout_computes_the_cp_kernel(stride, padding, hw):
    from edgeattack.compression import lowrank
    from edgeattack.tfutil import keras

    k = keras()
    m = _single_conv(k, hw, stride, padding)
    layer = m.get_layer("c")
    kernel, bias = layer.get_weights()
    c, a, b, d, info = lowrank.factor_cp(kernel, 6, FULL, seed=0)
    # the reference: the same conv holding the CP reconstruction of its kernel
    approx = np.einsum("hr,wr,ir,ro->hwio", a[:, 0, :, 0], b[0, :, :, 0], c[0, 0], d[0, 0])
    layer.set_weights([approx.astype(np.float32), bias])
    new = lowrank.rebuild(m, {"c": lowrank._factor_entries(layer.get_config(), "Conv2D", "cp",
                                                           (c, a, b, d), (hw, hw))})
    kinds = [type(l).__name__ for l in new.layers]
    assert kinds.count("DepthwiseConv2D") == 2
    assert ("ZeroPadding2D" in kinds) == (padding == "same" and stride > 1)
    assert _max_diff(m, new, hw) < 1e-5


def test_dense_svd_at_full_rank_is_exact_and_rank_follows_energy():
    from edgeattack.compression import lowrank
    from edgeattack.tfutil import keras

    k = keras()
    inp = k.Input((12,))
    m = k.Model(inp, k.layers.Dense(8, activation="tanh", name="d")(inp))
    layer = m.get_layer("d")
    a, b, info = lowrank.factor_matrix(layer.get_weights()[0], 8, FULL)
    new = lowrank.rebuild(m, {"d": lowrank._factor_entries(layer.get_config(), "Dense", "svd",
                                                           (a, b))})
    x = np.random.default_rng(1).random((4, 12)).astype(np.float32)
    assert np.abs(m.predict(x, verbose=0) - new.predict(x, verbose=0)).max() < 1e-5
    s = np.array([3.0, 2.0, 1.0, 0.5])
    assert lowrank.energy_rank(s, 0.9) == 2  # (9 + 4) / 14.25 = 0.91
    assert lowrank.energy_rank(s, 0.95) == 3
    # the parameter cap wins over energy
    _, _, capped = lowrank.factor_matrix(layer.get_weights()[0], 8,
                                         {"energy": 1.0, "ratio": None, "max_param_ratio": 0.5})
    assert capped["params_after"] <= 0.5 * capped["params_before"]


def test_same_padding_matches_tensorflow():
    from edgeattack.compression.lowrank import same_padding

    assert same_padding(10, 3, 2, 1) == (0, 1)
    assert same_padding(9, 3, 2, 1) == (1, 1)
    assert same_padding(9, 3, 1, 1) == (1, 1)
    assert same_padding(8, 5, 1, 2) == (4, 4)
