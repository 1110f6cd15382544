"""dkd (diverse knowledge distillation): one int8 soft-vote artifact of 3 students that the qemu-m4
firmware runs byte-identical to TFLM, whose output is the mean of the students' own softmax outputs;
the hard vote and the similarity penalty are recorded; bad parameters are one line."""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import UsageError

pytest_plugins = ["fixtures_compress"]


@pytest.fixture(scope="module")
def dkd_result(digits_model, tmp_path_factory):
    import edgeattack.defenses  # noqa: F401  (registers the defense steps)
    from edgeattack.compression import compress

    out = tmp_path_factory.mktemp("dkd") / "dkd"
    return compress(digits_model, [{"step": "dkd", "students": 3, "epochs": 4}, {"step": "ptq-int8"}],
                    out, seed=0, progress=False)


def _members(ensemble, n):
    """The students' own softmax outputs inside the ensemble (layers s0_..., s1_..., ...)."""
    from edgeattack.tfutil import keras

    heads = [next(layer for layer in reversed(ensemble.layers) if layer.name.startswith(f"s{i}_")
                  and isinstance(layer, keras().layers.Softmax)) for i in range(n)]
    return keras().Model(ensemble.inputs, [h.output for h in heads])


def test_soft_vote_averages_the_students(dkd_result):
    from edgeattack.datasets import load_dataset
    from edgeattack.quant import dequantize, quantize_input

    m = dkd_result.manifest
    d = m["steps"][0]["details"]
    assert d["students"] == 3 and len(d["student_accuracy"]) == 3
    assert d["ensemble_params"] > 3 * d["student_params"] - 1
    # the penalty did its job: the students' latent features ended less similar than they began
    assert d["after"]["similarity"] < d["before"]["similarity"]
    assert 0 <= d["hard_vote_accuracy"] <= 1 and d["soft_vote_accuracy"] == m["steps"][0]["accuracy_after"]
    assert m["accuracy"]["tflm"] > 0.5

    from edgeattack.keras_io import load_model

    ensemble = load_model(dkd_result.out / "model.keras")
    x = load_dataset("digits").x_test[:64]
    students = np.stack(_members(ensemble, 3).predict(x, verbose=0))
    vote = ensemble.predict(x, verbose=0)
    np.testing.assert_allclose(vote, students.mean(axis=0), atol=1e-6)
    assert not np.allclose(students[0], students[1], atol=1e-2)  # three different students

    # the int8 artifact computes the same average, to int8 resolution
    io = m["output"]
    q = quantize_input(x, m["input"]["scale"], m["input"]["zero_point"])
    raw = _tflm(dkd_result.out / "model.tflite", q)
    got = dequantize(raw, io["scale"], io["zero_point"])
    assert np.abs(got - students.mean(axis=0)).max() < 0.05
    assert np.mean(got.argmax(-1) == vote.argmax(-1)) > 0.9


def test_white_box_evaluation_reaches_the_ensemble(dkd_result):
    """The int8 surrogate (what `edgeattack evaluate` attacks) reproduces the soft-vote graph and its
    gradients: PGD with eps = the whole data range fools it."""
    from edgeattack.attacks import make, target
    from edgeattack.datasets import load_dataset

    d = load_dataset("digits")
    r = make("pgd", steps=10)(target(dkd_result.out / "model.tflite"), d.x_test[:16], d.y_test[:16],
                              epsilons=[1.0])
    assert r.clean_correct.sum() >= 8 and r.success[0][r.clean_correct].all()


def _tflm(path, q):
    from test_fw_qemu import _tflm_outputs

    return _tflm_outputs(path, q).reshape(len(q), -1)


@pytest.mark.qemu
def test_dkd_artifact_on_qemu_m4_matches_tflm(dkd_result):
    from conftest import require_tool
    from edgeattack.datasets import load_dataset
    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.quant import quantize_input
    from edgeattack.tflite.reader import read_model
    from test_fw_qemu import _check_identical, _random_inputs

    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    path = dkd_result.out / "model.tflite"
    ops = set(read_model(path.read_bytes()).distinct_ops)
    assert {"ADD", "FULLY_CONNECTED", "SOFTMAX"} <= ops
    m = dkd_result.manifest
    real = quantize_input(load_dataset("digits").x_test[:12], m["input"]["scale"], m["input"]["zero_point"])
    with start_qemu_board("qemu-m4", path) as board:
        assert "error" not in board.info, board.info["error"]
        xs = np.concatenate([real, _random_inputs(board.info, 12, seed=5)])
        _check_identical(board, path, xs)


@pytest.mark.parametrize("step, message", [
    ({"step": "dkd", "students": 1}, "'students' must be >= 2"),
    ({"step": "dkd", "students": 0}, "'students' must be >= 2"),
    ({"step": "dkd", "width": 0}, "parameter 'width' must be > 0"),
    ({"step": "dkd", "diversity": -1}, "'diversity' must be >= 0"),
    ({"step": "dkd", "similarity": "l2"}, "similarity"),
    ({"step": "dkd", "batch_size": 1}, "'batch_size' must be >= 2"),
    ({"step": "dkd", "epochs": 0}, "'epochs' must be >= 1"),
])
def test_bad_parameters_are_one_line(step, message):
    import edgeattack.defenses  # noqa: F401
    from edgeattack.compression.recipe import load_recipe

    with pytest.raises(UsageError) as e:
        load_recipe([step])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_dkd_is_a_builtin_recipe_and_in_the_defenses_study():
    from edgeattack.compression.recipe import load_recipe
    from edgeattack.study.spec import defense_recipes

    r = load_recipe("dkd")
    assert [s.name for s in r.steps] == ["dkd", "ptq-int8"] and r.steps[0].params["students"] == 3
    assert "dkd" in defense_recipes()


def test_dkd_after_adv_train_needs_adversarial_false(digits_model, tmp_path):
    import edgeattack.defenses  # noqa: F401
    from edgeattack.compression import compress

    recipe = [{"step": "adv-train", "epochs": 1, "steps": 1, "eval_samples": 0},
              {"step": "dkd", "epochs": 1}]
    with pytest.raises(UsageError) as e:
        compress(digits_model, recipe, tmp_path / "out", seed=0, progress=False)
    assert "adversarial: false" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_hard_vote_majority_and_ties():
    from edgeattack.defenses.dkd import hard_vote

    p = np.zeros((3, 2, 3))
    p[0, 0, 1], p[1, 0, 1], p[2, 0, 2] = 0.4, 0.4, 0.99     # majority (class 1) beats confidence
    p[0, 1, 0], p[1, 1, 1], p[2, 1, 2] = 0.5, 0.9, 0.6      # three-way tie: highest soft vote
    assert hard_vote(p).tolist() == [1, 1]


def test_qat_after_the_soft_vote_keeps_its_output_resolution(tmp_path):
    """A quantization-aware step after dkd (the defenses study's dkd+pqat) fine-tunes briefly: tfmot
    starts each activation range at [-6, 6] and moves it by a slow EMA, which left the soft vote's
    output (probabilities) in steps of about 0.045 and most inputs tied at the top (int8 accuracy
    0.61 -> 0.32 after a one-epoch pqat). The ranges now start from the float model's: the int8
    output keeps steps near 1/255 and the float model's accuracy; the fixed vote (I/N) is not
    trained. A two-member vote of one-layer students stands in for the ensemble (the same soft_vote
    layers)."""
    import edgeattack.defenses  # noqa: F401
    from edgeattack.compression import compress
    from edgeattack.datasets import load_dataset
    from edgeattack.defenses.dkd import soft_vote
    from edgeattack.tflite.analysis import io_details
    from edgeattack.tfutil import keras, set_seed

    k = keras()
    set_seed(0)
    ds = load_dataset("digits")
    inp = k.Input(ds.input_shape)
    flat = k.layers.Flatten()(inp)
    probs = [k.layers.Softmax()(k.layers.Dense(10)(flat)) for _ in range(2)]
    model = k.Model(inp, soft_vote(probs))
    model.compile(optimizer=k.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=3, batch_size=64, verbose=0)
    model.save(tmp_path / "vote.keras")
    res = compress(tmp_path / "vote.keras", [{"step": "qat", "epochs": 1}, {"step": "ptq-int8"}],
                   tmp_path / "qat", dataset="digits", seed=0, progress=False)
    scale = io_details(res.tflite_path.read_bytes())["outputs"][0]["scale"]
    assert scale < 1.5 / 255, scale
    acc = res.manifest["accuracy"]
    assert acc["litert"] >= acc["float"] - 0.03, acc
    # and QAT leaves the fixed vote fixed (tfmot's wrapper trains every weight it quantizes)
    from edgeattack.compression.pipeline import load_keras_model

    kernel = load_keras_model(res.model_path).get_layer("soft_vote").get_weights()[0]
    assert np.array_equal(kernel, np.eye(10, dtype=np.float32) / 2)
