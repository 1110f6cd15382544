"""The firmware's RAM budget (issues: "RAM = arena + receive buffers + input slots + at most 8 KB") on
qemu-m4: the linked ELF's data + bss + reserved stack against BuildResult's arena, receive buffers
and protocol-v2 input slots, the
stack's measured high-water mark (INFO stack_used, painted at boot) against its reservation after
running the model, and that the model still matches TFLM with the smaller buffers.
"""
from __future__ import annotations

import subprocess

import pytest

from conftest import require_tool
from test_fw_qemu import ZOO, _aligned, _check_identical, _random_inputs, no_qemu_left, zoo_model  # noqa: F401

pytestmark = pytest.mark.qemu

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm", "make")
OVERHEAD_LIMIT = 8192  # bytes beyond arena + receive buffers + input slots the issues allow


@pytest.fixture(scope="module")
def tools():
    require_tool(*TOOLS)


def _symbol_sizes(elf) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def _deep_model(out_dir, layers=48):
    """A generated chain of 48 small convolutions: 149 tensors, 50 operators (the issue's "models of up
    to 150 tensors", whose tables would have broken the RAM rule outside the arena)."""
    from edgeattack import tfutil
    from test_fw_qemu import _int8_model

    keras = tfutil.keras()
    tfutil.set_seed(0)
    x = inp = keras.Input((6, 6, 2))
    for k in range(layers):
        x = keras.layers.Conv2D(2, 3, padding="same", activation="relu" if k % 2 else None)(x)
    x = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    return _int8_model(keras.Model(inp, x), (6, 6, 2), out_dir / "deep150.tflite")


def _model(name, tiny_tflite, tmp_path_factory):
    if name == "deep150":
        return _deep_model(tmp_path_factory.mktemp("fw_ram_deep"))
    if name == "tiny":
        return _aligned(tiny_tflite, tmp_path_factory.mktemp("fw_ram_tiny"))
    return zoo_model(name, tmp_path_factory.mktemp("fw_ram_zoo"), input_shape=ZOO[name][0])  # width 0.5 (zoo_model default)


@pytest.mark.parametrize("name", ["tiny", "cnn-digits", "resnet8", "deep150"])
def test_ram_is_arena_plus_receive_buffers_plus_slots_plus_8k(tools, name, tiny_tflite, tmp_path_factory):
    from edgeattack.firmware.build import build_firmware, rx_buffer_bytes
    from edgeattack.device.boards.qemu import start_qemu_board

    model = _model(name, tiny_tflite, tmp_path_factory)
    if name == "deep150":
        from edgeattack.tflite.reader import read_model

        assert 145 <= len(read_model(model.read_bytes()).tensors) <= 150
    b = build_firmware(model, "qemu-m4")
    # The breakdown's parts are the linked buffers themselves, not estimates.
    sizes = _symbol_sizes(b.elf)
    assert sizes["g_arena"] == b.arena_bytes + 16
    assert sizes["g_rx"] + sizes["g_ring"] == b.rx_bytes == rx_buffer_bytes()
    assert b.input_slots == 4 and sizes["g_input_slots"] == b.slot_bytes == 4 * b.input_bytes  # 4 MiB: room for 4
    used = b.data + b.bss + b.stack_bytes
    assert used == b.ram_total == b.arena_bytes + 16 + b.rx_bytes + b.slot_bytes + b.other_ram_bytes
    assert used <= b.arena_bytes + b.rx_bytes + b.slot_bytes + OVERHEAD_LIMIT, (
        f"{name}: RAM {used} = arena {b.arena_bytes} + receive buffers {b.rx_bytes} + input slots "
        f"{b.slot_bytes} + {used - b.arena_bytes - b.rx_bytes - b.slot_bytes} (limit {OVERHEAD_LIMIT}); "
        f"breakdown {b.ram_breakdown()}")

    with start_qemu_board("qemu-m4", model, build=b) as board:
        assert "error" not in board.info, board.info["error"]
        _, after = _check_identical(board, model, _random_inputs(board.info, 6, seed=3))
    assert after["stack_bytes"] == b.stack_bytes
    assert 0 < after["stack_used"] < b.stack_bytes


@pytest.mark.parametrize("name", ["tiny", *ZOO])
def test_stack_high_water_mark_stays_below_reservation(tools, name, tiny_tflite, tmp_path_factory):
    """Every zoo model (and the fixture) after inferences and INFO: the painted
    stack's deepest use leaves at least 25% of the reservation untouched (issue 13)."""
    from edgeattack.firmware.build import build_firmware
    from edgeattack.device.boards.qemu import start_qemu_board

    model = _model(name, tiny_tflite, tmp_path_factory)
    b = build_firmware(model, "qemu-m4")
    with start_qemu_board("qemu-m4", model, build=b) as board:
        assert "error" not in board.info, board.info["error"]
        _, after = _check_identical(board, model, _random_inputs(board.info, 3, seed=4))
    assert after["stack_bytes"] == b.stack_bytes
    # The mark is real: the boot-time INFO already used some, inference and INFO cannot use less.
    assert board.info["stack_used"] <= after["stack_used"]
    assert after["stack_used"] <= 0.75 * b.stack_bytes, (
        f"{name}: stack high-water mark {after['stack_used']} of {b.stack_bytes} reserved")
