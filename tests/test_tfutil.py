"""TensorFlow's kernel library is chosen the same way on every x86-64 CPU (see edgeattack.tfutil)."""
import os
import subprocess
import sys


def _run(code, env_value):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_onednn_is_on_whatever_the_cpu():
    # TensorFlow's own answer (it reads the variable at its first use), not only our variable
    code = ("from edgeattack.tfutil import tf; tf(); "
            "from tensorflow.python.util import _pywrap_util_port as p; print(int(p.IsMklEnabled()))")
    assert _run(code, None) == "1"


def test_a_user_can_turn_onednn_off():
    code = "import os, edgeattack.tfutil; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    assert _run(code, "0") == "0"
