"""`edgeattack study --ray`: the ci study on a real Ray cluster on loopback (a head node and a second
node declaring board:emu-tflm, each `ray start --block` under edgeattack.children, stopped by pid)
gives the same summary as the local run, with every board-bound cell on the declaring node."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import IN_CI, run_cli

from edgeattack import children
from edgeattack.link.transport import free_local_port
from edgeattack.study.identity import run_identity

# Ray's CLI run by this Python (the venv's `ray` script may live in another environment)
RAY = [sys.executable, "-m", "ray.scripts.scripts"]
ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")


def _procs_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.fixture
def ray_cluster():
    if not IN_CI:  # under CI=true nothing skips: the test extra installs ray[default]
        pytest.importorskip("ray")
    port = free_local_port()
    # a short private temp dir: Ray's sockets live there and must not meet other users' clusters
    tmp = tempfile.mkdtemp(prefix="ea-ray-", dir="/tmp")
    common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    procs = []
    try:
        procs.append(children.spawn([*RAY, "start", "--head", "--port", str(port), "--temp-dir", tmp,
                                     "--include-dashboard", "false", *common], env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    deathsig=15))
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:  # the head answers before a second node may join it
            r = children.run([*RAY, "status", "--address", address], timeout=30, env=ENV, text=True)
            if r.returncode == 0:
                break
            assert time.monotonic() < deadline, r.stderr
            time.sleep(1)
        procs.append(children.spawn([*RAY, "start", "--address", address,
                                     "--resources", json.dumps({"board:emu-tflm": 1}), *common], env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, deathsig=15))
        while True:
            r = children.run([*RAY, "status", "--address", address], timeout=30, env=ENV, text=True)
            if "board:emu-tflm" in r.stdout:
                break
            assert time.monotonic() < deadline, r.stdout + r.stderr
            time.sleep(1)
        yield address
    finally:
        for p in reversed(procs):
            children.stop(p, grace_s=20)
        deadline = time.monotonic() + 20
        while _procs_mentioning(tmp) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _procs_mentioning(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"


@pytest.fixture
def local_ci(tmp_path_factory):
    from test_study import ci_reference

    return ci_reference(tmp_path_factory)[0]


def test_ray_cluster_gives_the_local_summary(local_ci, ray_cluster, tmp_path):
    local = local_ci
    run = tmp_path / "ray"
    proc = run_cli("study", "ci", "-o", run, "--ray", ray_cluster, "--json", env={"RAY_USAGE_STATS_ENABLED": "0"},
                   timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert not summary["failed"] and summary["computed"] == summary["cells"]
    cells = {d.name: json.loads((d / "cell.json").read_text()) for d in (run / "cells").iterdir()}
    board_bound = [c for c in cells.values() if c.get("board")]
    assert board_bound and all(c["host"].startswith("ray:") for c in cells.values())
    for c in board_bound:
        assert c["node_resources"] == ["board:emu-tflm"], c
    # a Ray worker keeps its emulated board open across cells on the same model (as a local worker
    # does): a later cell finds the inferences of earlier ones on the device's counter
    before = [json.loads((run / "cells" / c["hash"] / "session.json").read_text())["device"]["inferences_before"]
              for c in board_bound if c["kind"] in ("session", "blackbox")]
    assert len(before) == 3 and max(before) > 0, before
    assert run_identity(run) == run_identity(local)
