"""RFC2217 through Debian's ser2net: an emulated board's pty exported on 127.0.0.1, a session through
rfc2217:// gives the same answers as a session through the pty itself."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import require_tool
from edgeattack.deploy import ser2net


def _records(run_dir):
    from edgeattack.results import RESULTS

    return [json.loads(line) for line in (run_dir / RESULTS).read_text().splitlines()]


def _ser2net_pids() -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read()
                state = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if b"ser2net" in cmd and b"ea-ser2net-" in cmd and state != "Z":
                out.append(int(entry))
    return out


def test_config_yaml_is_ser2net4_syntax():
    text = ser2net.config_yaml("/dev/ttyACM0", 3333, 9600)
    assert "accepter: telnet(rfc2217),tcp(nodelay),127.0.0.1,3333" in text
    assert "connector: serialdev,/dev/ttyACM0,9600n81,local" in text
    assert "chardelay: false" in text
    with pytest.raises(Exception, match="without commas"):
        ser2net.config_yaml("/dev/tty,bad", 1)


def test_session_over_rfc2217_equals_session_over_pty(tiny_tflite, tiny_dataset, tmp_path):
    if shutil.which("ser2net") is None and not os.path.exists("/usr/sbin/ser2net"):
        require_tool("ser2net")
    from edgeattack.device.boards.emulator import EmulatedBoard
    from edgeattack.profiles import get_profile
    from edgeattack.session import run_session

    _, _, x_test, y_test = tiny_dataset
    inputs = tmp_path / "clean.npz"
    np.savez(inputs, x=x_test[:16], y=y_test[:16])
    with EmulatedBoard(get_profile("emu-litert"), tiny_tflite) as board:
        direct = run_session("emu-litert", tiny_tflite, inputs, port=board.url, out=tmp_path / "pty",
                             progress=False)
        with ser2net.export_serial(board.url) as url:
            assert url.startswith("rfc2217://127.0.0.1:")
            assert len(_ser2net_pids()) == 1
            remote = run_session("emu-litert", tiny_tflite, inputs, port=url, out=tmp_path / "rfc2217",
                                 progress=False)
        assert _ser2net_pids() == [], "ser2net outlived export_serial"
        assert board.alive()
    keys = ("id", "source", "eps", "pred", "output_raw")
    a, b = _records(tmp_path / "pty"), _records(tmp_path / "rfc2217")
    assert len(a) == len(b) == 16
    assert [{k: r[k] for k in keys} for r in a] == [{k: r[k] for k in keys} for r in b]
    for summary in (direct, remote):
        assert summary["status"] == "complete"
        assert summary["device"]["inferences_run"] == summary["device"]["records_sent"] == 16
    assert remote["board"]["port"] == url
    # the link went through ser2net, not around it: both sessions ran on the same board, one after the other
    assert remote["device"]["inferences_before"] == direct["device"]["inferences_after"]


def test_export_serial_reports_a_missing_device(tmp_path):
    if shutil.which("ser2net") is None and not os.path.exists("/usr/sbin/ser2net"):
        require_tool("ser2net")
    with pytest.raises(Exception, match="does not exist"):
        with ser2net.export_serial(str(tmp_path / "ttyNOPE")):
            pass
