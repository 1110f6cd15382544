"""The model prepared on the host for a firmware build (issue 13, Footprint; runtime/ea_runtime.h
ea_prepared, host/ea_prepared_c.c): `ea_host prepare` writes the initialized tables as C after checking
that they compute what the loaded model does; the firmware build uses them when the host runtime
accepts the model and otherwise builds the firmware that loads the model itself. Host-only: the
firmware side runs in test_fw_footprint.py and every QEMU test."""
from __future__ import annotations

import re

import pytest

from test_fw_qemu import ZOO, abs_model, zoo_model  # noqa: F401 (abs_model: a fixture)


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory):
    return zoo_model("resnet8", tmp_path_factory.mktemp("fw_prepared"), input_shape=ZOO["resnet8"][0])


def _records(text: str, name: str) -> bytes:
    """The byte image `name` of a generated file."""
    body = re.search(r"\} " + name + r" = \{\{\n(.*?)\}\};", text, re.S).group(1)
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))


@pytest.mark.parametrize("kernels", ["ref", "dsp", "mve"])
def test_prepared_tables_leave_the_arena_and_are_reproducible(resnet8, tmp_path, kernels):
    from edgeattack.firmware.hostrt import host_plan, prepare_c

    data = resnet8.read_bytes()
    plan = host_plan(data, kernels)
    a, b = tmp_path / "a.c", tmp_path / "b.c"
    got = prepare_c(data, a, kernels)
    assert prepare_c(data, b, kernels) == got and a.read_bytes() == b.read_bytes()  # a reproducible build
    # the tables (37 tensors of 60 bytes, 16 operators of 64, each table 16-byte aligned) leave the arena
    assert got["table_bytes"] == plan["table_bytes"] == 37 * 60 + 4 + 16 * 64
    assert got["arena_bytes"] == plan["arena_bytes"] - got["table_bytes"]
    text = a.read_text()
    assert "_Static_assert(offsetof(ea_op, params) == 20" in text
    assert len(_records(text, "tensors")) == 37 * 60 and len(_records(text, "ops")) == 16 * 64
    # no activation offset still counts the tables: every one lies inside the smaller arena
    tensors = _records(text, "tensors")
    for k in range(37):
        rec = tensors[60 * k:60 * (k + 1)]
        is_const, produced = rec[26], rec[27]
        offset = int.from_bytes(rec[52:56], "little")
        count_bytes = int.from_bytes(rec[48:52], "little")
        if produced and not is_const:
            assert offset + count_bytes <= got["arena_bytes"], (k, offset, count_bytes)


def test_operator_rows_are_renumbered_for_a_firmware_with_only_the_models_operators(resnet8, tmp_path):
    """resnet8 uses ADD, AVERAGE_POOL_2D, CONV_2D, FULLY_CONNECTED, RESHAPE, SOFTMAX: rows 0, 1, 2, 5, 7, 8
    of the whole table (runtime/ea_ops.c), rows 0..5 of its firmware's."""
    from edgeattack.firmware.hostrt import prepare_c
    from edgeattack.tflite.reader import read_model

    data = resnet8.read_bytes()
    prepare_c(data, tmp_path / "own.c", "ref")
    prepare_c(data, tmp_path / "all.c", "ref", selected=False)
    own, every = (_records((tmp_path / f).read_text(), "ops") for f in ("own.c", "all.c"))
    whole = {0: 0, 1: 1, 3: 2, 9: 5, 22: 7, 25: 8}  # builtin code -> row in the whole table
    selected = {code: i for i, code in enumerate(sorted(whole, key=whole.get))}
    ops = read_model(data).operators
    assert len(own) == len(every) == 64 * len(ops)
    for k, op in enumerate(ops):
        reg_own, builtin, reg_all = own[64 * k], own[64 * k + 1], every[64 * k]
        assert builtin == op.builtin_code
        assert reg_all == whole[builtin] and reg_own == selected[builtin], (k, op.name)
    # nothing else differs
    assert [own[i] for i in range(len(own)) if i % 64] == [every[i] for i in range(len(every)) if i % 64]


def test_a_model_the_runtime_refuses_is_not_prepared_and_builds_the_loading_firmware(abs_model, tmp_path):
    """The host names the refusal and writes nothing; the firmware build then falls back to the
    firmware that loads the model itself (whose INFO says why: test_fw_qemu, unsupported operator)."""
    from edgeattack.errors import EdgeAttackError
    from edgeattack.firmware.build import prepared_plan
    from edgeattack.firmware.hostrt import prepare_c

    data = abs_model.read_bytes()
    out = tmp_path / "p.c"
    with pytest.raises(EdgeAttackError, match="unsupported operator ABS"):
        prepare_c(data, out, "ref")
    assert not out.exists()
    assert prepared_plan(data, "ref") is None
