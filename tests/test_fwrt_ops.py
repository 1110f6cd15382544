"""The operator table's promises, on a copy of the runtime: an operator is one file in ops/ plus one table
row (the worked example of docs/firmware_runtime.md, built as written), and a board's kernel set
(EA_KERNELS) replaces reference kernels and gets its scratch buffers planned in the arena."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool
from test_fwrt_runtime import SEEDS, _with_opcode

REPO = Path(__file__).resolve().parent.parent
FW = REPO / "firmware_models"
DOC = REPO / "docs" / "firmware_runtime.md"
ENV = {"ASAN_OPTIONS": "detect_leaks=0:exitcode=86", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87",
       "PATH": "/usr/bin:/bin"}


def _copy_runtime(tmp_path) -> Path:
    fw = tmp_path / "firmware_models"
    for part in ("runtime", "util", "host", "fuzz", "proto"):
        shutil.copytree(FW / part, fw / part)
    return fw


def _build(fw: Path, *make_vars) -> Path:
    build = fw.parent / "build"
    p = subprocess.run(["make", "-s", "-C", str(fw / "host"), f"BUILD={build}", *make_vars, f"{build}/ea_host"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return build / "ea_host"


def _ea_host(binary, *args, stdin=b""):
    p = subprocess.run([str(binary), *map(str, args)], input=stdin, capture_output=True, timeout=120, env=ENV)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def test_the_documented_operator_is_one_file_and_one_row(tmp_path):
    require_tool("cc", "make")
    text = DOC.read_text()
    section = text[text.index("### Worked example"):]
    file_code, row_code = re.findall(r"```c\n(.*?)```", section, re.S)[:2]
    fw = _copy_runtime(tmp_path)
    (fw / "runtime" / "ops" / "abs.c").write_text(file_code)
    table = fw / "runtime" / "ea_ops.c"
    src = table.read_text()
    first = "    X(ADD, add, add)"
    assert first in src
    table.write_text(src.replace(first, row_code.strip().rstrip("\\").rstrip() + " \\\n" + first, 1))
    binary = _build(fw)

    model = tmp_path / "abs.tflite"
    model.write_bytes(_with_opcode(SEEDS[0].read_bytes(), 0, 101))  # op 0 becomes ABS
    rc, out, err = _ea_host(binary, "plan", model)
    assert "unsupported operator" not in err, err
    assert rc == 0 or err.strip().startswith("ea_host: ABS at op 0: "), err
    # The shipped runtime refuses it: the new file and row made the difference.
    from edgeattack.firmware.hostrt import host_binary
    rc, out, err = _ea_host(host_binary(), "plan", model)
    assert rc == 2 and "unsupported operator ABS (builtin 101) at op 0" in err


def test_a_kernel_set_replaces_reference_kernels_and_gets_scratch(tmp_path, tiny_tflite):
    require_tool("cc", "make")
    from edgeattack.firmware.hostrt import host_binary, host_plan

    model = Path(tiny_tflite)
    plan = host_plan(model.read_bytes())
    fw = _copy_runtime(tmp_path)
    variant = fw / "runtime" / "kernels" / "scratchtest"
    variant.mkdir(parents=True)
    # A "variant" that only asks for 1 MiB of scratch per convolution: the planner must place it
    # (arena grows), and the results stay those of the reference kernel, which ignores it.
    (variant / "conv_scratchtest.c").write_text(
        '#include "ea_kernels.h"\n'
        "int32_t ea_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {\n"
        "    (void)in_dims;\n    (void)filter_dims;\n    return 1 << 20;\n}\n")
    binary = _build(fw, "EA_KERNELS=scratchtest")
    rc, out, err = _ea_host(binary, "plan", model)
    assert rc == 0, err
    ours = json.loads(out)
    assert ours["arena_bytes"] >= (1 << 20) > plan["arena_bytes"]  # the fixture has a convolution
    x = np.random.default_rng(5).integers(-128, 128, size=(4, *plan["input"]["shape"]), dtype=np.int8).tobytes()
    rc_ref, y_ref, err_ref = _ea_host(host_binary(), "run", model, stdin=x)
    rc_var, y_var, err_var = _ea_host(binary, "run", model, stdin=x)
    assert rc_ref == 0 and rc_var == 0, err_ref + err_var
    assert y_var == y_ref
