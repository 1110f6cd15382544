"""`pip install .` (not editable) gives a working tool: package data is found from anywhere.

Installing TensorFlow again into a fresh venv costs ~2 minutes and 2.4 GB, so the fresh venv borrows
the already-installed dependencies through a .pth file and installs edgeattack itself with a plain,
non-editable `pip install --no-deps .`: what is tested is our packaging, not pip's resolver. So that
the pins are still checked to hold together, `pip check` runs in that venv: every requirement of every
installed distribution, edgeattack's pins included, must be met by the borrowed packages (an offline
check of a second, not a download of 2.4 GB).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # Dependencies come from the test environment's site-packages (see module docstring): all of its
    # site folders, as a venv layered over another one by a .pth file (a .pth inside a folder that a
    # .pth added is not read) borrows from both.
    sites = [sysconfig.get_paths()["purelib"]] + [p for p in sys.path if p.endswith("site-packages")
                                                  and Path(p).is_dir()]
    (site / "_deps.pth").write_text("".join(f"{p}\n" for p in dict.fromkeys(sites)))
    build = tmp_path_factory.mktemp("build")
    env = dict(os.environ, PIP_NO_BUILD_ISOLATION="0")
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--cache-dir", str(build / "cache"), str(ROOT)], check=True, env=env, cwd=build)
    return venv


def test_plain_install_finds_package_data(fresh_venv, tmp_path):
    py = str(fresh_venv / "bin/python")
    code = (
        "import json, edgeattack, edgeattack.resources as r\n"
        "print(json.dumps({'file': edgeattack.__file__, 'boards': sorted(p.name for p in r.boards_dir().glob('*.yaml')),"
        " 'firmware': sorted(p.name for p in r.firmware_dir().iterdir()),"
        " 'recipes': sorted(p.name for p in (r.package_data_dir() / 'compression' / 'recipes').glob('*.yaml'))}))"
    )
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    info = json.loads(out.stdout)
    # Installed, not pointing back into the checkout.
    assert str(ROOT) not in info["file"], info["file"]
    assert "site-packages" in info["file"]
    for board in ("emu-tflm.yaml", "qemu-m4.yaml", "pi4.yaml"):
        assert board in info["boards"]
    assert "Makefile" in info["firmware"]
    assert "ptq-int8.yaml" in info["recipes"]


def _pip_check(venv):
    return subprocess.run([str(venv / "bin/python"), "-m", "pip", "check"], capture_output=True, text=True,
                          env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))


def test_pins_resolve_together(fresh_venv):
    py = str(fresh_venv / "bin/python")
    reqs = json.loads(subprocess.run(
        [py, "-c", "import json, importlib.metadata as m; print(json.dumps(m.requires('edgeattack')))"],
        capture_output=True, text=True, check=True).stdout)
    assert "tensorflow==2.21.0" in reqs and any(r.startswith("ai-edge-litert==") for r in reqs)
    proc = _pip_check(fresh_venv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The check is not vacuous: a distribution whose pin the installed packages cannot meet fails it.
    site = next((fresh_venv / "lib").glob("python*/site-packages"))
    bad = site / "ea_conflict-1.0.dist-info"
    bad.mkdir()
    try:
        (bad / "METADATA").write_text("Metadata-Version: 2.1\nName: ea-conflict\nVersion: 1.0\n"
                                      "Requires-Dist: tensorflow==0.0.1\n")
        proc = _pip_check(fresh_venv)
        assert proc.returncode == 1 and "ea-conflict 1.0 has requirement tensorflow==0.0.1" in proc.stdout
    finally:
        import shutil

        shutil.rmtree(bad)


def test_installed_cli_runs(fresh_venv, tmp_path):
    exe = fresh_venv / "bin/edgeattack"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "compress" in out.stdout and "session" in out.stdout
    out = subprocess.run([str(exe), "boards"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "qemu-m4" in out.stdout


def test_help_is_fast_and_tensorflow_free():
    code = ("import sys, time; t=time.time(); from edgeattack.cli import cli; import edgeattack;"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print(time.time()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 1.0
    from conftest import run_cli
    import time
    t = time.time()
    proc = run_cli("--help")
    assert proc.returncode == 0 and "Commands" in proc.stdout
    assert time.time() - t < 1.0 + 1.0  # <1 s of work, plus slack for a loaded 2-core machine
