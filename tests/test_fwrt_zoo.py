"""The zoo's architectures (int8, as the compression recipes convert them) on the firmware's C runtime:
byte-exact with TFLM, and the arena the firmware needs is planned (untrained weights: the arithmetic, not
the accuracy, is under test)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_tool

# The three with residual ADDs, depthwise convs, PAD and MEAN (the plain CNNs add nothing new).
ZOO = ["resnet8", "dscnn", "mobilenet-tiny"]


@pytest.mark.slow
def test_zoo_models_match_tflm_on_the_c_runtime():
    require_tool("cc", "make")
    from tflite_micro.python.tflite_micro import runtime

    from edgeattack.compression.convert import to_tflite
    from edgeattack.firmware.hostrt import firmware_arena_bytes, run_host
    from edgeattack.tfutil import set_seed
    from edgeattack.zoo import build_model

    set_seed(0)
    rng = np.random.default_rng(0)
    for name in ZOO:
        model = build_model(name, width=0.5)
        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        tfl = to_tflite(model, "int8", rng.random((8,) + shape).astype(np.float32))
        xs = rng.integers(-128, 128, size=(5, 1) + shape).astype(np.int8)
        xs[0], xs[1] = -128, 127
        interp = runtime.Interpreter.from_bytes(tfl, arena_size=8 << 20)
        expected = []
        for x in xs:
            interp.set_input(x, 0)
            interp.invoke()
            expected.append(interp.get_output(0).copy())
        assert np.array_equal(run_host(tfl, xs), np.stack(expected)), name
        assert 0 < firmware_arena_bytes(tfl) < 1 << 20, name
