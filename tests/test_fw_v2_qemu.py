"""Protocol v2 end to end on qemu-m4 (real toolchain, real QEMU, the C firmware): a black-box-like
query stream (each query a few bytes away from the same sample's previous one, samples pinned to
slots) goes as PATCHes and gives the same outputs as full v1 loads and as TFLM, with the device's
inference counter exact; a v1 host still works; STALE / SLOT / NOT_LOADED come from the firmware;
a board whose RAM holds one slot only builds with one, says so, and still works."""
from __future__ import annotations

import collections
import logging
import time

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.link import messages as m
from edgeattack.link.frame import Frame, FrameDecoder, encode_frame
from test_fw_qemu import _int8_model, _tflm_outputs, no_qemu_left  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.qemu

SAMPLES, QUERIES = 3, 16  # per sample: one load, then patches


@pytest.fixture(scope="module")
def model16(tmp_path_factory):
    """A small int8 CNN on 16x16x3 inputs (768 bytes: a patch is a few percent of a load)."""
    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    from edgeattack import tfutil

    keras = tfutil.keras()
    tfutil.set_seed(0)
    model = keras.Sequential([
        keras.layers.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
        keras.layers.Softmax(),
    ])
    return _int8_model(model, (16, 16, 3), tmp_path_factory.mktemp("fw_v2") / "cnn16.tflite")


def _query_stream(seed=0):
    """(inputs, slots): SAMPLES samples interleaved, each query changing 1-3 single bytes (SimBA)
    or a 2x2x3 square (Square) of that sample's previous query."""
    rng = np.random.default_rng(seed)
    current = [rng.integers(-128, 128, (16, 16, 3), dtype=np.int8) for _ in range(SAMPLES)]
    xs, slots = [], []
    for _ in range(QUERIES):
        for k in range(SAMPLES):
            x = current[k].copy()
            if rng.random() < 0.5:
                idx = rng.integers(0, x.size, rng.integers(1, 4))
                x.reshape(-1)[idx] = rng.integers(-128, 128, idx.size)
            else:
                r, c = rng.integers(0, 15, 2)
                x[r:r + 2, c:c + 2] = rng.integers(-128, 128, (2, 2, 3))
            current[k] = x
            xs.append(x)
            slots.append(k)
    return xs, slots


class Recorder:
    """A port that keeps a copy of every byte the host writes (to count request types)."""

    def __init__(self, port, sink: bytearray):
        self._port, self._sink = port, sink

    def write(self, data):
        self._sink.extend(data)
        return self._port.write(data)

    def __getattr__(self, name):
        return getattr(self._port, name)


def _requests(wire: bytes) -> collections.Counter:
    return collections.Counter((f.version, m.TYPE_NAMES.get(f.type, f.type))
                               for f in FrameDecoder().feed(bytes(wire)))


def _run(url, xs, slots, protocol, inflight=SAMPLES):
    from edgeattack.link.client import Client
    from edgeattack.link.transport import open_port

    sent = bytearray()
    with Client(lambda: Recorder(open_port(url), sent), timeout=10.0, total_timeout=120.0,
                protocol=protocol) as client:
        opened = client.connect()
        wire = -(client.stats.wire_bytes_sent + client.stats.wire_bytes_received)  # queries only
        out = [r.output_raw.reshape(-1) for r in client.infer_many(xs, inflight=inflight, slots=slots)]
        wire += client.stats.wire_bytes_sent + client.stats.wire_bytes_received
        after = client.info()
        version = client.version
    return {"out": np.stack(out), "opened": opened, "ran": after["inferences"] - opened["inferences"],
            "wire": wire, "version": version, "requests": _requests(sent), "overruns": after["overruns"]}


def _exchange(port, decoder, frame: Frame) -> Frame:
    from edgeattack.link.transport import read_some

    port.write(encode_frame(frame))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for reply in decoder.feed(read_some(port)):
            if reply.seq == frame.seq:
                return reply
    raise AssertionError(f"no reply to {frame}")


def test_patched_stream_equals_full_loads_and_tflm(model16):
    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.firmware.build import build_firmware
    from edgeattack.link.transport import open_port

    b = build_firmware(model16, "qemu-m4")
    assert b.input_slots == 4 and b.slot_bytes == 4 * 768
    xs, slots = _query_stream()
    with start_qemu_board("qemu-m4", model16, build=b) as board:
        info = board.info
        assert (info["protocol"], info["protocols"], info["slots"]) == (1, [1, 2], 4)
        v2 = _run(board.url, xs, slots, protocol=2)
        v1 = _run(board.url, xs, slots, protocol=1)  # a v1 host on the v2 firmware

        # The firmware's own refusals, frame by frame (v2 frames are answered in v2), as the user
        # reads them: with the coded message pieces written out from this build's texts.
        from edgeattack.firmware.messages import lookup
        from edgeattack.link.coded import expand

        def error_of(frame):
            code, text = m.unpack_error(frame.payload)
            assert b.build_id and "\x1f" in text  # the texts are not in the firmware's flash
            return code, expand(text, lookup(b.build_id))

        port, dec = open_port(board.url), FrameDecoder()
        try:
            port.write(b"\x00")
            assert _exchange(port, dec, Frame(1, m.INFO, 1, b"")).version == 1
            r = _exchange(port, dec, Frame(2, m.SLOT_LOAD, 2, m.pack_slot_load(1, m.DTYPE_INT8, 768, 0,
                                                                                   xs[0].tobytes())))
            slot, gen, received, total = m.unpack_slot_load_reply(r.payload)
            assert (r.version, slot, received, total) == (2, 1, 768, 768) and gen >= 1
            r = _exchange(port, dec, Frame(2, m.PATCH, 3, m.pack_patch(1, gen + 5, [(0, b"\x01")], infer=True)))
            code, text = error_of(r)
            assert (r.version, r.type, code) == (2, m.ERROR, m.ERR_STALE)
            assert text == (f"PATCH computed against generation {gen + 5} of slot 1, which is at "
                            f"generation {gen} (LOAD it again)")
            r = _exchange(port, dec, Frame(2, m.SLOT_INFER, 4, m.pack_slot_infer(1)))
            assert m.unpack_error(r.payload)[0] == m.ERR_NOT_LOADED  # STALE unloaded the slot
            r = _exchange(port, dec, Frame(2, m.SLOT_INFER, 5, m.pack_slot_infer(4)))
            assert error_of(r) == (
                m.ERR_SLOT, "slot 4 is out of range: this device has slots 0..3 (INFO slots)")
        finally:
            port.close()

    n = len(xs)
    assert (v2["version"], v1["version"]) == (2, 1)
    np.testing.assert_array_equal(v2["out"], v1["out"])
    np.testing.assert_array_equal(v2["out"], _tflm_outputs(model16, xs))
    assert v2["ran"] == v1["ran"] == n and v2["overruns"] == v1["overruns"] == 0  # each query once
    # v2: one SLOT_LOAD + SLOT_INFER per sample, then a PATCH with its INFER per query
    assert v2["requests"] == {(1, "INFO"): 1, (2, "SLOT_LOAD"): SAMPLES, (2, "SLOT_INFER"): SAMPLES,
                              (2, "PATCH"): n - SAMPLES, (2, "INFO"): 2}, v2["requests"]
    # v2 INFOs: the one assigning the boot_id after the opening v1 INFO, and _run's closing one.
    assert v1["requests"] == {(1, "INFO"): 2, (1, "LOAD"): n, (1, "INFER"): n}, v1["requests"]
    ratio = v2["wire"] / v1["wire"]
    print(f"{n} queries: v2 {v2['wire']} wire bytes, v1 {v1['wire']} ({ratio:.3f})")
    assert ratio < 0.25  # 3 full loads, then 2x2x3 squares or 1-3 bytes per query


def test_board_with_ram_for_one_slot(model16, tmp_path, caplog):
    """RAM for one input slot: the build says so in one line, INFO reports slots 1, and a v2 host
    patches that one slot."""
    import yaml

    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.firmware.build import build_firmware
    from edgeattack.resources import boards_dir

    full = build_firmware(model16, "qemu-m4")
    profile = yaml.safe_load((boards_dir() / "qemu-m4.yaml").read_text())
    profile.update(name="tight-m4", ram_bytes=full.ram_estimate + 768 + 64)  # 2 slots do not fit
    path = tmp_path / "tight-m4.yaml"
    path.write_text(yaml.safe_dump(profile))
    with caplog.at_level(logging.WARNING, logger="edgeattack.firmware.build"):
        b = build_firmware(model16, str(path))
    assert (b.input_slots, b.slot_bytes) == (1, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "board tight-m4: RAM for 1 protocol-v2 input slot(s) of 768 bytes, not 4: black-box attacks "
        "keep at most 1 sample(s) in flight (a board with more RAM, or a smaller model, gives 4)"]
    xs, _ = _query_stream(seed=1)
    xs = xs[::SAMPLES]  # one sample's queries
    with start_qemu_board(str(path), model16, build=b) as board:
        assert board.info["slots"] == 1
        run = _run(board.url, xs, [0] * len(xs), protocol=2, inflight=1)  # one query per slot in flight
    assert run["version"] == 2 and run["ran"] == len(xs)
    assert run["requests"][(2, "PATCH")] == len(xs) - 1
    np.testing.assert_array_equal(run["out"], _tflm_outputs(model16, xs))
