"""Error-message texts out of flash (issue 13, Footprint; firmware_models/util/ea_msg.h): the firmware
sends its messages' fixed pieces as offsets into the ELF's unloaded .ea_msg section, INFO names the
build (build_id), and the host writes the texts back, so the user reads exactly the text the host build
of the runtime (full strings) gives, while the texts take no flash.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.errors import DeviceError, EdgeAttackError
from test_fw_qemu import _client, abs_model, no_qemu_left  # noqa: F401

pytestmark = pytest.mark.qemu


def test_expand_writes_texts_back_and_names_a_build_it_has_no_texts_for():
    from edgeattack.link.coded import expand

    texts = {0: "unsupported operator ", 22: "(builtin {}) at op {}", 50: " ", 60: "(tensor {})"}
    assert expand("\x1f0000ABS\x1f0032\x1f0016101\x1e0\x1e", texts) == \
        "unsupported operator ABS (builtin 101) at op 0"
    assert expand("\x1f003c-7\x1e12", texts) == "(tensor -7)12"  # numbers after a piece stay text
    assert expand("plain text, 3 numbers", None) == "plain text, 3 numbers"
    note = expand("\x1f0005 at op 2\x1f00073\x1e4\x1e", texts, "ab12")
    assert note == ("[#0005] at op 2[#0007 3 4] (message texts of firmware build ab12 are not on this host: build "
                    "that firmware here to read them)")


def _loaded_bytes(elf) -> bytes:
    """The bytes a board's flash holds: every allocated section with contents."""
    import struct

    data = elf.read_bytes()
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, _ = struct.unpack_from("<HHH", data, 0x2E)
    out = b""
    for i in range(shnum):
        _, kind, flags, _, off, size = struct.unpack_from("<IIIIII", data, shoff + i * shentsize)
        if flags & 2 and kind != 8:  # SHF_ALLOC, not NOBITS
            out += data[off:off + size]
    return out


def test_device_messages_read_as_the_host_runtime_writes_them(abs_model):  # noqa: F811
    require_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
    from edgeattack.device.api import open_device
    from edgeattack.device.boards.qemu import start_qemu_board
    from edgeattack.firmware.build import build_firmware
    from edgeattack.firmware.hostrt import host_plan
    from edgeattack.firmware.messages import extract
    from edgeattack.link.client import Client
    from edgeattack.link.transport import open_port

    with pytest.raises(EdgeAttackError) as host:  # the host build keeps its texts
        host_plan(abs_model.read_bytes())
    want = str(host.value).removeprefix("C runtime: ")
    assert want == "unsupported operator ABS (builtin 101) at op 2", want

    b = build_firmware(abs_model, "qemu-m4")
    build_id, texts = extract(b.elf)
    assert build_id == b.build_id and len(build_id) == 32
    flash = _loaded_bytes(b.elf)
    for piece in ("unsupported operator ", "slot {} is out of range: this device has slots 0..{} (INFO slots)",
                  "Tensor.shape", "bias must be int32, got TensorType "):
        assert any(piece == t for t in texts.values()), piece
        assert piece.split("{}")[0].encode() not in flash, piece

    with start_qemu_board("qemu-m4", abs_model, build=b) as board:
        assert board.info["build_id"] == b.build_id
        assert board.info["error"] == want
        with _client(board.url) as client:
            assert client.connect()["error"] == want
            with pytest.raises(DeviceError) as err:
                client.infer(np.zeros((4, 4, 1), np.int8))
            assert str(err.value).endswith(f"ERROR MODEL (7): {want}") and err.value.device_message == want
        # A host that never built this firmware says so in the same one line.
        with Client(lambda: open_port(board.url), timeout=10.0, total_timeout=60.0) as client:
            error = client.connect()["error"]
            assert error.startswith("[#") and "]ABS[#" in error and " 101 2]" in error and "\x1f" not in error and "\n" not in error
            assert error.endswith(f"(message texts of firmware build {b.build_id} are not on this host: build "
                                  f"that firmware here to read them)")
    with pytest.raises(DeviceError) as err:
        with open_device("qemu-m4", abs_model):
            pass
    assert str(err.value).endswith(f"could not load its model: {want}")
