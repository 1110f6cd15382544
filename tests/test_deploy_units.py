"""Deploy pieces that need no SSH server: host and URL parsing, ssh error wording, the agent's import
closure (what goes to the board), the remote folder's ownership checks, and flash on non-linux boards."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import run_cli
from edgeattack.deploy import pi
from edgeattack.errors import DeviceError, UsageError
from edgeattack.link import ssh_target, ssh_tunnel
from edgeattack.link.ssh_target import SSHTarget


@pytest.mark.parametrize("text, user, host, port", [
    ("pi@raspberrypi.local", "pi", "raspberrypi.local", None),
    ("pi@10.0.0.7:2222", "pi", "10.0.0.7", 2222),
    ("raspberrypi", None, "raspberrypi", None),
    ("me@[fe80::1]:22", "me", "fe80::1", 22),
    ("me@fe80::1", "me", "fe80::1", None),
])
def test_parse_host(text, user, host, port):
    t = SSHTarget.parse(text)
    assert (t.user, t.host, t.port) == (user, host, port)
    assert SSHTarget.parse(t.label) == t


@pytest.mark.parametrize("bad", ["", "pi@", "pi@host:0", "pi@host:99999", "pi@host:x", "pi@[::1", "a b"])
def test_parse_host_rejects(bad):
    with pytest.raises(UsageError):
        SSHTarget.parse(bad)


def test_ssh_url_round_trip_and_forms():
    t = SSHTarget.parse("pi@raspberrypi.local:2222", identity="/k/id", config="/c/cfg")
    url = ssh_tunnel.ssh_url(t, 5555)
    assert url == "ssh://pi@raspberrypi.local:2222/127.0.0.1:5555?identity=/k/id&config=/c/cfg"
    spec = ssh_tunnel.parse_ssh_url(url)
    assert (spec.target, spec.remote_host, spec.remote_port) == (t, "127.0.0.1", 5555)
    short = ssh_tunnel.parse_ssh_url("ssh://raspberrypi/6000")
    assert (short.target.host, short.target.user, short.target.port, short.remote_host, short.remote_port) == \
        ("raspberrypi", None, None, "127.0.0.1", 6000)
    for bad in ("ssh://pi@host/", "ssh://pi@host/127.0.0.1:x", "ssh://pi@host/1?color=red", "ssh:///5555"):
        with pytest.raises(UsageError):
            ssh_tunnel.parse_ssh_url(bad)


def test_tcp_and_ssh_urls_have_pyserial_handlers():
    """Every port URL goes through serial_for_url: tcp:// and ssh:// by edgeattack.link's handlers,
    the others by pyserial's own (none is rewritten by prefix)."""
    import serial

    from edgeattack.link import protocol_ssh, protocol_tcp, transport

    assert transport.HANDLER_PACKAGE in serial.protocol_handler_packages
    for url, cls in (("tcp://127.0.0.1:5555", protocol_tcp.Serial),
                     ("ssh://pi@h/127.0.0.1:5555", protocol_ssh.Serial)):
        port = serial.serial_for_url(url, do_not_open=True)
        assert type(port) is cls and port.port == url and not port.is_open
    loop = transport.open_port("loop://")
    assert type(loop).__module__ == "serial.urlhandler.protocol_loop"
    loop.close()


def test_forced_options_and_identity():
    argv = SSHTarget.parse("pi@h:2200", identity="/k/id").ssh_args()
    assert argv[-2:] == ["--", "pi@h"] and argv[argv.index("-p") + 1] == "2200"
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert argv[argv.index("-i") + 1] == "/k/id"
    tunnel = ssh_tunnel.tunnel_args(SSHTarget.parse("pi@h"), 4000, 5555)
    assert "-tt" in tunnel and "ExitOnForwardFailure=yes" in tunnel and "ControlPath=none" in tunnel
    assert tunnel[-3:] == ["--", "pi@h", ssh_tunnel.TUNNEL_HOLD_COMMAND]
    assert "127.0.0.1:4000:127.0.0.1:5555" in tunnel


@pytest.mark.parametrize("stderr, expect", [
    ("No ED25519 host key is known for [h]:22 and you have requested strict checking.\n"
     "Host key verification failed.", "unknown host key, refused"),
    ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.", "CHANGED"),
    ("pi@h: Permission denied (publickey).", "SSH authentication failed"),
    ("ssh: connect to host h port 22: Connection refused", "host unreachable"),
    ("ssh: connect to host h port 22: No route to host", "host unreachable"),
    ("ssh: Could not resolve hostname h: Name or service not known", "cannot resolve the host name"),
    ("something new", "ssh failed"),
])
def test_ssh_failure_messages(stderr, expect):
    err = ssh_target.ssh_failure(SSHTarget.parse("pi@h:22"), stderr)
    assert isinstance(err, DeviceError) and expect in str(err)
    assert str(err).startswith("pi@h:22: ") and "\n" not in str(err)


def test_agent_tree_is_minimal_and_imports_without_tensorflow(tmp_path):
    tree = pi.agent_tree()
    assert {"edgeattack/__init__.py", "edgeattack/errors.py", "edgeattack/agent.py",
            "edgeattack/link/__init__.py"} <= set(tree)
    assert all(p.startswith(("edgeattack/link/", "edgeattack/__init__", "edgeattack/errors", "edgeattack/agent",
                             "edgeattack/quant", "edgeattack/tflite/__init__", "edgeattack/tflite/reader",
                             "edgeattack/tflite/runtimes", "edgeattack/tflite/agreement"))
               for p in tree), sorted(tree)
    for rel, data in tree.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    # the shipped tree alone imports the agent, and nothing of TensorFlow comes along
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import edgeattack.agent, edgeattack.link.server, edgeattack.tflite.runtimes
        assert edgeattack.agent.__file__.startswith({str(tmp_path)!r}), edgeattack.agent.__file__
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(pi.FORBIDDEN)!r})
        assert not heavy, heavy
        print('ok')
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_agent_tree_refuses_tensorflow_and_unknown_packages(tmp_path):
    root = tmp_path / "edgeattack"
    (root / "link").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "link" / "__init__.py").write_text("")
    (root / "helper.py").write_text("def f():\n    import tensorflow as tf\n    return tf\n")
    (root / "agent.py").write_text("from .link import x\nfrom . import helper\n")
    with pytest.raises(Exception, match="imports tensorflow .*via edgeattack.helper"):
        pi.agent_tree(root)
    (root / "helper.py").write_text("import requests\n")
    with pytest.raises(Exception, match="imports requests"):
        pi.agent_tree(root)
    (root / "helper.py").write_text("import json, numpy\nfrom .link import x\n")
    assert sorted(pi.agent_tree(root)) == ["edgeattack/__init__.py", "edgeattack/agent.py",
                                          "edgeattack/helper.py", "edgeattack/link/__init__.py"]


def test_stop_script_only_kills_an_agent(tmp_path):
    """A pid file naming some other process (pid reuse) must not kill it."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / pi.MARKER).write_text(pi.MARKER_LINE + "\n")
        (tmp_path / "agent.pid").write_text(str(other.pid))
        proc = subprocess.run(["sh", "-c", pi.stop_script(str(tmp_path))], capture_output=True, text=True)
        assert proc.returncode == 0 and "stopped" not in proc.stdout
        assert other.poll() is None and not (tmp_path / "agent.pid").exists()
    finally:
        other.kill()
        other.wait()


def test_prepare_model_aligns_and_rejects(tmp_path, tiny_tflite):
    data, sha, changed = pi.prepare_model(tiny_tflite)
    import hashlib

    assert hashlib.sha256(data).hexdigest() == sha
    from edgeattack.tflite.analysis import is_aligned_16
    from edgeattack.tflite.reader import read_model

    assert is_aligned_16(read_model(data)) and changed == (data != tiny_tflite.read_bytes())
    again, sha2, changed2 = pi.prepare_model(_write(tmp_path / "aligned.tflite", data))
    assert (again, sha2, changed2) == (data, sha, False)  # aligned input is deployed unchanged
    with pytest.raises(UsageError, match="not a .tflite"):
        pi.prepare_model(_write(tmp_path / "x.tflite", b"not a model at all"))


def _write(path, data):
    path.write_bytes(data)
    return path


def test_flash_on_other_board_kinds(tiny_tflite):
    proc = run_cli("flash", "--board", "emu-litert", str(tiny_tflite))
    assert proc.returncode == 2 and "is an emulator: nothing to flash" in proc.stderr
    proc = run_cli("flash", "--board", "qemu-m4", "--host", "pi@h", str(tiny_tflite))
    assert proc.returncode == 2 and "--host applies to linux boards only" in proc.stderr
    try:
        import pyocd  # noqa: F401
    except ImportError:
        proc = run_cli("flash", "--board", "nucleo-l4r5zi", str(tiny_tflite))
        assert proc.returncode == 1 and "pip install pyocd" in proc.stderr
    proc = run_cli("flash", "--board", "pi4", "--host", "pi@h")
    assert proc.returncode == 2 and "MODEL is missing" in proc.stderr
    proc = run_cli("flash", "--board", "pi4", "--port-mode", "uart", "--remote-port", "5000", str(tiny_tflite))
    assert proc.returncode == 2 and "--remote-port applies to --port-mode tcp" in proc.stderr
    proc = run_cli("flash", "--board", "pi4", "--port-mode", "uart", "--dry-run", str(tiny_tflite))
    assert proc.returncode == 0 and "--port /dev/serial0" in proc.stdout and "verify" not in proc.stdout


def test_flash_kernels_on_a_linux_board(tiny_tflite):
    """--kernels ref reaches the agent's command line; a firmware kernel set is refused in one line."""
    proc = run_cli("flash", "--board", "pi4", "--host", "pi@h", "--kernels", "ref", "--dry-run", str(tiny_tflite))
    assert proc.returncode == 0, proc.stderr
    assert "--board pi4 --kernels ref" in proc.stdout
    proc = run_cli("flash", "--board", "pi4", "--host", "pi@h", "--kernels", "dsp", "--dry-run", str(tiny_tflite))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--kernels dsp: board pi4 runs LiteRT" in proc.stderr and "ref" in proc.stderr


@pytest.mark.parametrize("bad", [".", "./", "/", "//", "/.", "~", "~/", "", "  ", "..", "../x", "a/../b",
                                 "/home/../lib", "~root/x"])
def test_remote_dir_that_flash_cannot_own_is_refused(bad):
    for script in (pi.upload_script, pi.stop_script, lambda d: pi.probe_script("python3", d)):
        with pytest.raises(UsageError, match="--remote-dir"):
            script(bad)


@pytest.mark.parametrize("good, path", [("edgeattack-agent", "./edgeattack-agent"), ("~/a/b", "./a/b"),
                                        ("./x/", "./x"), ("/opt/ea", "/opt/ea"), ("-rf", "./-rf")])
def test_remote_dir_paths(good, path):
    assert pi.remote_dir_path(good) == path


def test_flash_refuses_dot_and_root_remote_dirs(tiny_tflite):
    """Before anything is planned or run: `--remote-dir .` would replace ~/lib, `/` (as root) /lib."""
    for bad in (".", "/"):
        proc = run_cli("flash", "--board", "pi4", "--host", "pi@h", "--remote-dir", bad, "--dry-run",
                       str(tiny_tflite))
        assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout)
        assert len(proc.stderr.strip().splitlines()) == 1 and "--remote-dir" in proc.stderr
        stop = run_cli("flash", "--board", "pi4", "--host", "pi@h", "--remote-dir", bad, "--stop", "--dry-run")
        assert stop.returncode == 2 and "--remote-dir" in stop.stderr


def _sh(script, cwd, stdin=b""):
    return subprocess.run(["sh", "-c", script], cwd=cwd, input=stdin, capture_output=True)


def test_remote_scripts_touch_only_a_folder_flash_created(tmp_path, tiny_tflite):
    """The scripts run by POSIX sh here (the board's login home = tmp_path): an existing folder
    without the marker (or with a wrong one, or a file) is refused before anything changes; a new
    one is created with the marker and then accepted again."""
    tree = {"edgeattack/__init__.py": b""}
    bundle = pi._bundle(tree, tiny_tflite.read_bytes(), {"model_sha256": "x"})
    (tmp_path / "own" / "lib").mkdir(parents=True)
    (tmp_path / "own" / "lib" / "keep.txt").write_text("precious")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "forged").mkdir()
    (tmp_path / "forged" / pi.MARKER).write_text("not the line\n")
    for name in ("own", "afile", "forged"):
        for script in (pi.upload_script(name), pi.stop_script(name),
                       pi.start_script(name, "python3", "tcp://127.0.0.1:1", "litert", 1)):
            proc = _sh(script, tmp_path, bundle)
            assert proc.returncode == 4 and proc.stdout.decode().split() == [pi.NOT_OURS], (name, proc)
    assert (tmp_path / "own" / "lib" / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "own").iterdir()) == ["lib"]
    proc = _sh(pi.upload_script("new/agent"), tmp_path, bundle)
    assert proc.returncode == 0, proc.stderr
    new = tmp_path / "new" / "agent"
    assert (new / pi.MARKER).read_text() == pi.MARKER_LINE + "\n"
    assert (new / pi.MODEL_NAME).read_bytes() == tiny_tflite.read_bytes()
    assert _sh(pi.upload_script("new/agent"), tmp_path, bundle).returncode == 0  # its own: reused
    assert _sh(pi.stop_script("new/agent"), tmp_path).returncode == 0


@pytest.mark.parametrize("host", ["-oProxyCommand=touch${IFS}/tmp/x", "-oProxyCommand=x@h", "h;rm${IFS}-rf",
                                  "pi@-oProxyCommand=x"])
def test_hosts_that_ssh_would_read_as_options_are_refused(host):
    with pytest.raises(UsageError):
        SSHTarget.parse(host)
    with pytest.raises(UsageError, match="starts with '-'"):
        SSHTarget(host="-oProxyCommand=x")
    with pytest.raises(UsageError, match="starts with '-'"):
        ssh_tunnel.parse_ssh_url("ssh://-oProxyCommand=x/5555")


def test_flash_with_an_option_as_host_is_a_usage_error(tiny_tflite):
    proc = run_cli("flash", "--board", "pi4", "--host=-oProxyCommand=touch${IFS}/tmp/ea-pwned", "--dry-run",
                   str(tiny_tflite))
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout)
    assert "starts with '-'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
