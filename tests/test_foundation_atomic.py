"""atomic: outputs honour the umask, JSON is strict, a failure leaves nothing behind."""
from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from edgeattack import atomic
from edgeattack.errors import UsageError


def as_unprivileged() -> list[str]:
    """A command prefix running a program as a user that file permissions apply to: root ignores
    them, so as root the program runs as `nobody` (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return []
    from conftest import require_tool

    require_tool("setpriv")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_written_files_and_folders_honour_the_umask(tmp_path, umask):
    atomic.write_bytes(tmp_path / "a.bin", b"x")
    atomic.write_json(tmp_path / "a.json", {"k": 1})
    with atomic.atomic_dir(tmp_path / "run") as tmp:
        (tmp / "inside.txt").write_text("y")
    assert _mode(tmp_path / "a.bin") == 0o666 & ~umask
    assert _mode(tmp_path / "a.json") == 0o666 & ~umask
    assert _mode(tmp_path / "run") == 0o777 & ~umask
    assert _mode(tmp_path / "run" / "inside.txt") == 0o666 & ~umask  # as any program writes it


def test_failed_writes_leave_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_json_is_strict_with_non_finite_as_null(tmp_path):
    obj = {"nan": float("nan"), "inf": np.float32("inf"), "ninf": -math.inf, "ok": np.float64(0.5),
           "arr": np.array([1.0, np.nan]), "nested": [{"x": (float("nan"), 2)}], "i": np.int64(3),
           "path": tmp_path}
    atomic.write_json(tmp_path / "s.json", obj)
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text

    def strict(const):
        raise ValueError(f"non-strict JSON constant {const}")

    back = json.loads(text, parse_constant=strict)
    assert back == {"nan": None, "inf": None, "ninf": None, "ok": 0.5, "arr": [1.0, None],
                    "nested": [{"x": [None, 2]}], "i": 3, "path": str(tmp_path)}
    with pytest.raises(TypeError, match="not JSON serializable"):
        atomic.json_text({"x": object()})


def test_unwritable_output_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="afile is a file, not a folder; choose another -o"):
        atomic.check_output(tmp_path / "afile" / "sub" / "out", force=False)
    atomic.check_output(tmp_path / "new" / "deeper" / "out", force=False)  # creatable: fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # the check wrote nothing


@pytest.fixture
def open_tmp():
    """A folder anyone may enter (pytest's tmp_path sits below a 0700 folder of root's)."""
    import shutil
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp(prefix="ea-atomic-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_read_only_folder_refused(open_tmp):
    ro = open_tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code = ("import sys\nfrom edgeattack.atomic import check_output\nfrom edgeattack.errors import UsageError\n"
            "try:\n    check_output(sys.argv[1], False)\nexcept UsageError as e:\n    print(e); sys.exit(2)\n")
    proc = subprocess.run([*as_unprivileged(), sys.executable, "-c", code, str(ro / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"cannot write in {ro} (Permission denied)" in proc.stdout
