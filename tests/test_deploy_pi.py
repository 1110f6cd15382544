"""Deploying to a linux board over real SSH: Debian's OpenSSH server on 127.0.0.1 plays the Pi.

The fixture runs /usr/sbin/sshd as the current user with its own host key, authorized key and config
in a temp dir; the client side gets its own ssh_config/known_hosts (ssh -F), so ~/.ssh is never read
or written. The "remote" python is this venv's python (it has ai_edge_litert, numpy, pyserial).
"""
from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool, run_cli
from edgeattack import children
from edgeattack.deploy import pi
from edgeattack.link import ssh_tunnel
from edgeattack.link.ssh_target import SSHTarget

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeattack-test", "-f", str(path)],
                   check=True, capture_output=True)


def _pids_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `text` (a unique temp path)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(int(entry))
    return found


class SSHServer:
    def __init__(self, root: Path, port: int, proc: subprocess.Popen):
        self.root, self.port, self.proc = root, port, proc
        self.user = getpass.getuser()
        self.config = str(root / "ssh_config")
        self.host = f"{self.user}@127.0.0.1:{port}"

    def target(self) -> SSHTarget:
        return SSHTarget.parse(self.host, config=self.config)


@contextlib.contextmanager
def loopback_sshd(root: Path):
    """Run /usr/sbin/sshd on 127.0.0.1 (a free port) as the current user, everything in `root`:
    host key, user keys (id_user authorized, id_other not), sshd_config, and a client ssh_config +
    known_hosts for `ssh -F`. Yields an SSHServer; sshd is terminated and reaped at the end (and
    dies with this process: edgeattack.children). tools/bench_links.py and test_link_urls use it too."""
    root.mkdir(parents=True, exist_ok=True)
    _keygen(root / "host_key")
    _keygen(root / "id_user")
    _keygen(root / "id_other")  # a key the server does not know
    (root / "authorized_keys").write_text((root / "id_user.pub").read_text())
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    host_pub = " ".join((root / "host_key.pub").read_text().split()[:2])
    for attempt in range(5):
        port = _free_port()
        (root / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1:{port}
HostKey {root}/host_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
""")
        (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
        (root / "ssh_config").write_text(f"""\
Host *
  UserKnownHostsFile {root}/known_hosts
  GlobalKnownHostsFile /dev/null
  IdentityFile {root}/id_user
  IdentitiesOnly yes
  LogLevel ERROR
""")
        log = open(root / "sshd.log", "wb")
        proc = children.spawn([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if b"Server listening" in (root / "sshd.log").read_bytes():
                break
            time.sleep(0.05)
        if proc.poll() is None and b"Server listening" in (root / "sshd.log").read_bytes():
            break
        children.stop(proc)
        log.close()
    else:
        raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}")
    try:
        yield SSHServer(root, port, proc)
    finally:
        children.stop(proc)
        log.close()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if SSHD is None:
        require_tool("sshd")
    require_tool("ssh", "ssh-keygen", "setsid", "tar")
    with loopback_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def remote_dir(sshd, tmp_path):
    """A unique remote dir; whatever still runs from it at the end is stopped and reported."""
    rdir = tmp_path / "agent-home"
    try:
        yield rdir
    finally:
        leftover = _pids_mentioning(str(rdir))
        if leftover:
            try:
                pi.stop_pi(sshd.target(), str(rdir))
            except Exception:  # noqa: BLE001 - the kill below still cleans up
                pass
            for pid in _pids_mentioning(str(rdir)):
                os.kill(pid, signal.SIGKILL)


def _flash(sshd, model, rdir, *extra, config=None):
    return run_cli("flash", "--board", "pi4", "--host", sshd.host, "--ssh-config", config or sshd.config,
                   "--python", sys.executable, "--remote-dir", str(rdir), *extra,
                   *([str(model)] if model else []), timeout=300)


def _agent_pids(rdir) -> list[int]:
    return [p for p in _pids_mentioning(str(rdir)) if "edgeattack.agent" in
            Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]


def _litert(model_path: Path, x_int8: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_path.read_bytes(), num_threads=1)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for x in x_int8:
        interp.set_tensor(i["index"], x[None])
        interp.invoke()
        outs.append(interp.get_tensor(o["index"])[0].copy())
    return np.stack(outs)


# -------------------------------------------------------------------------------------------------


def test_flash_tunnel_infer_matches_litert_and_stop(sshd, remote_dir, tiny_tflite, tiny_dataset, tmp_path):
    """flash -> agent detached on the 'Pi' loopback -> a tunnel per use -> outputs equal in-process
    LiteRT; re-flash replaces the agent; --stop leaves nothing running."""
    proc = _flash(sshd, tiny_tflite, remote_dir, "--remote-port", str(_free_port()))
    assert proc.returncode == 0, proc.stderr
    deployed = json.loads((remote_dir / "deploy.json").read_text())
    sha = hashlib.sha256((remote_dir / pi.MODEL_NAME).read_bytes()).hexdigest()
    assert deployed["model_sha256"] == sha and sha in proc.stdout
    # only the agent's minimal tree went over, and it imports no TensorFlow
    shipped = sorted(str(p.relative_to(remote_dir / "lib")) for p in (remote_dir / "lib").rglob("*.py"))
    assert "edgeattack/agent.py" in shipped and "edgeattack/link/server.py" in shipped
    assert shipped == sorted(pi.agent_tree())  # the closure test_deploy_units checks, nothing more
    assert not any(name.startswith(("edgeattack/device", "edgeattack/cli", "edgeattack/compression"))
                   for name in shipped)
    (pid,) = _agent_pids(remote_dir)
    assert int((remote_dir / "agent.pid").read_text()) == pid
    # the agent really runs from the shipped tree, not from this checkout
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"PYTHONPATH={remote_dir}/lib".encode() in env
    url = [line.split("--port ", 1)[1] for line in proc.stdout.splitlines() if "--port ssh://" in line][0]
    assert url.startswith(f"ssh://{sshd.user}@127.0.0.1:{sshd.port}/127.0.0.1:")
    assert url.endswith(f"?config={sshd.config}")

    _, _, x_test, y_test = tiny_dataset
    from edgeattack.link.client import Client
    from edgeattack.link.transport import open_port
    from edgeattack.quant import quantize_input

    with Client(lambda: open_port(url), timeout=2.0, total_timeout=20.0) as client:
        info = client.connect()
        assert info["model_sha256"] == sha and info["board"] == "pi4" and info["runtime"] == "litert"
        q = info["input"]
        x_q = quantize_input(x_test[:12], q["scale"], q["zero_point"])
        got = np.stack([r.output_raw.reshape(-1) for r in client.infer_many(list(x_q))])
        tunnel_pids = _pids_mentioning(sshd.config)
        assert tunnel_pids, "the tunnel's ssh process should be running while the port is open"
    assert not _pids_mentioning(sshd.config), "the tunnel's ssh process outlived the port"
    assert _no_remote_hold_left(), "the tunnel's remote command outlived the tunnel"
    np.testing.assert_array_equal(got, _litert(remote_dir / pi.MODEL_NAME, x_q).reshape(len(x_q), -1))

    # a whole session through the ssh:// URL, as a user runs it (the session opens and closes its
    # own tunnel)
    from edgeattack.results import RESULTS, SUMMARY

    inputs = tmp_path / "clean.npz"
    np.savez(inputs, x=x_test[:20], y=y_test[:20])
    proc = run_cli("session", "--board", "pi4", "--model", remote_dir / pi.MODEL_NAME, "--inputs", inputs,
                   "--port", url, "--no-progress", "-o", tmp_path / "run", timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / SUMMARY).read_text())
    assert not _pids_mentioning(sshd.config), "the session's tunnel outlived the session"
    records = [json.loads(line) for line in (tmp_path / "run" / RESULTS).read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(20))
    ref = _litert(remote_dir / pi.MODEL_NAME, x_q_all := quantize_input(x_test[:20], q["scale"], q["zero_point"]))
    assert [r["output_raw"] for r in records] == ref.reshape(20, -1).tolist()
    assert [r["pred"] for r in records] == ref.reshape(20, -1).argmax(1).tolist()
    assert all(r["board"] == "pi4" and r["model_sha256"] == sha for r in records)
    assert summary["status"] == "complete"
    assert summary["device"]["inferences_run"] == summary["device"]["records_sent"] == 20
    assert summary["board"]["port"] == url

    # verify_info refuses an agent that serves other bytes than the expected ones
    rport = int(url.rsplit(":", 1)[1].split("?")[0])
    info = pi.query_info(url)
    pi.verify_info(info, sha, sshd.target().label)
    with pytest.raises(Exception, match=f"127.0.0.1:{sshd.port}: model hash mismatch"):
        pi.verify_info(info, "0" * 64, sshd.target().label)

    # flashing again stops the first agent and starts a new one
    again = _flash(sshd, tiny_tflite, remote_dir, "--remote-port", str(rport))
    assert again.returncode == 0, again.stderr
    (pid2,) = _agent_pids(remote_dir)
    assert pid2 != pid and pid not in _pids_mentioning(str(remote_dir))

    stop = _flash(sshd, None, remote_dir, "--stop")
    assert stop.returncode == 0, stop.stderr
    assert f"stopped agent {pid2}" in stop.stdout
    assert _agent_pids(remote_dir) == [] and not (remote_dir / "agent.pid").exists()
    assert _pids_mentioning(sshd.config) == []


def test_dry_run_prints_every_command_and_changes_nothing(sshd, remote_dir, tiny_tflite):
    proc = _flash(sshd, tiny_tflite, remote_dir, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not remote_dir.exists()
    out = proc.stdout
    for step in ("probe", "install", "stop", "upload", "start", "verify"):
        assert f". {step}:" in out
    commands = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    assert len(commands) == 6 and all(c.split()[0].endswith("ssh") for c in commands)
    assert all("StrictHostKeyChecking=yes" in c and "BatchMode=yes" in c for c in commands)
    assert "ExitOnForwardFailure=yes" in commands[-1]
    # nothing was even attempted: sshd logged no connection
    assert str(remote_dir) not in (sshd.root / "sshd.log").read_text()


def test_unknown_host_key_is_refused(sshd, remote_dir, tiny_tflite, tmp_path):
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(Path(sshd.config).read_text().replace(str(sshd.root / "known_hosts"), str(empty)))
    proc = _flash(sshd, tiny_tflite, remote_dir, config=str(config))
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "unknown host key, refused" in err and "ssh-keyscan" in err
    assert f"127.0.0.1:{sshd.port}" in err
    assert empty.read_text() == "", "the host key must never be added silently"
    assert not remote_dir.exists()


def test_auth_failure_and_unreachable_host(sshd, remote_dir, tiny_tflite, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(Path(sshd.config).read_text().replace("id_user", "id_other"))
    proc = _flash(sshd, tiny_tflite, remote_dir, config=str(config))
    assert proc.returncode == 1 and "SSH authentication failed" in proc.stderr and "ssh-copy-id" in proc.stderr
    closed = _free_port()
    proc = run_cli("flash", "--board", "pi4", "--host", f"{sshd.user}@127.0.0.1:{closed}", "--ssh-config",
                   sshd.config, str(tiny_tflite))
    assert proc.returncode == 1
    assert f"127.0.0.1:{closed}: host unreachable" in proc.stderr and "Connection refused" in proc.stderr
    assert not remote_dir.exists()


def test_remote_python_missing_or_lacking_modules(sshd, remote_dir, tiny_tflite, tmp_path):
    proc = _flash(sshd, tiny_tflite, remote_dir, "--python", str(tmp_path / "no-such-python3"))
    assert proc.returncode == 1 and "remote python" in proc.stderr and "not found" in proc.stderr
    # a python without the agent's modules, and installing refused
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    proc = _flash(sshd, tiny_tflite, remote_dir, "--python", str(bare / "bin" / "python"), "--no-install")
    assert proc.returncode == 1, proc.stdout
    assert "lacks ai_edge_litert, numpy, serial" in proc.stderr and "--no-install" in proc.stderr
    assert "ai-edge-litert==" in proc.stderr
    assert not remote_dir.exists()


def test_tunnel_errors_name_the_host_and_reap_ssh(sshd, tmp_path):
    closed = _free_port()
    target = SSHTarget.parse(f"{sshd.user}@127.0.0.1:{closed}", config=sshd.config)
    with pytest.raises(Exception, match=rf"127.0.0.1:{closed}: host unreachable"):
        with ssh_tunnel.tunnel(target, 5555):
            pass
    assert _pids_mentioning(sshd.config) == []
    # an exception inside the block still reaps the tunnel
    with pytest.raises(RuntimeError):
        with ssh_tunnel.tunnel(sshd.target(), 5555):
            assert _pids_mentioning(sshd.config)
            raise RuntimeError("boom")
    assert _pids_mentioning(sshd.config) == []
    # tunnels closed right after opening leave nothing on the far side either (the remote command
    # that holds the tty open must end with the connection)
    for _ in range(5):
        with ssh_tunnel.tunnel(sshd.target(), 5555):
            pass
    assert _no_remote_hold_left()


def _no_remote_hold_left(grace: float = 5.0) -> bool:
    deadline = time.monotonic() + grace
    while _pids_mentioning(ssh_tunnel.TUNNEL_HOLD_MARK):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_agent_that_cannot_listen_fails_with_its_log(sshd, remote_dir, tiny_tflite):
    """The port is taken on the 'Pi': the agent exits, flash reports agent.log's reason, exit 1.
    The python is given relative to the login home (a venv there), as docs/pi.md shows."""
    import pwd

    home = pwd.getpwuid(os.getuid()).pw_dir
    relative_python = os.path.relpath(sys.executable, home)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_cli("flash", "--board", "pi4", "--host", sshd.host, "--ssh-config", sshd.config,
                       "--python", relative_python, "--remote-dir", str(remote_dir), "--remote-port", str(port),
                       str(tiny_tflite), timeout=300)
    assert proc.returncode == 1, proc.stdout
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "the agent exited" in err and "cannot listen" in err, err
    assert _agent_pids(remote_dir) == []


def test_flash_serial_mode_agent_holds_the_device(sshd, remote_dir, tiny_tflite):
    """--port-mode gadget with a pty standing in for /dev/ttyGS0: the agent on the 'Pi' opens the
    pty's slave, and the host side (the master, as /dev/ttyACM0 would be) gets INFO over it."""
    import tty

    from edgeattack.link.client import Client
    from edgeattack.link.transport import FdPort

    master, slave = os.openpty()
    tty.setraw(slave)
    slave_path = os.ttyname(slave)
    try:
        proc = _flash(sshd, tiny_tflite, remote_dir, "--port-mode", "gadget", "--serial", slave_path)
        assert proc.returncode == 0, proc.stderr
        assert f"listening on {slave_path}" in proc.stdout and "--port ssh://" not in proc.stdout
        (pid,) = _agent_pids(remote_dir)
        assert any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == slave_path for fd in os.listdir(f"/proc/{pid}/fd"))
        port = FdPort(os.dup(master), name="host side")
        with Client(lambda: port, timeout=2.0, total_timeout=20.0) as client:
            info = client.connect()
        expected = hashlib.sha256((remote_dir / pi.MODEL_NAME).read_bytes()).hexdigest()
        assert info["model_sha256"] == expected and info["board"] == "pi4"
    finally:
        stop = _flash(sshd, None, remote_dir, "--stop")
        os.close(slave)
        os.close(master)
    assert stop.returncode == 0 and "stopped agent" in stop.stdout
    assert _agent_pids(remote_dir) == []


def test_existing_folder_without_the_marker_is_refused(sshd, tmp_path, tiny_tflite):
    """A folder flash did not create (a user's own, with a lib/ in it) is never written into: the
    upload would replace its lib/. Refused before anything runs on the board; a folder flash made
    carries the marker and is reused."""
    mine = tmp_path / "users-own"
    (mine / "lib").mkdir(parents=True)
    (mine / "lib" / "keep.txt").write_text("precious")
    for extra in ((), ("--stop",)):
        proc = _flash(sshd, None if extra else tiny_tflite, mine, *extra)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, (proc.returncode, err)
        assert "was not created by edgeattack flash" in err and pi.MARKER in err and str(mine) in err
    assert sorted(p.name for p in mine.rglob("*")) == ["keep.txt", "lib"]
    assert (mine / "lib" / "keep.txt").read_text() == "precious"
    # a forged marker with the wrong first line is no marker
    (mine / pi.MARKER).write_text("mine\n")
    assert _flash(sshd, tiny_tflite, mine).returncode == 2
    assert (mine / "lib" / "keep.txt").read_text() == "precious"


def test_host_that_is_an_ssh_option_is_refused(sshd, tmp_path, tiny_tflite):
    """`--host -oProxyCommand=...` would make ssh run a local command; it is a usage error, and
    nothing (ssh included) runs."""
    touched = tmp_path / "proxy-command-ran"
    for host in (f"-oProxyCommand=touch${{IFS}}{touched}", f"-oProxyCommand=touch${{IFS}}{touched}@127.0.0.1"):
        proc = run_cli("flash", "--board", "pi4", f"--host={host}", "--ssh-config", sshd.config,
                       "--python", sys.executable, "--remote-dir", str(tmp_path / "agent"), str(tiny_tflite),
                       timeout=120)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, (proc.returncode, err)
        assert "starts with '-'" in err and "ProxyCommand" in err
        assert "ssh -" not in err  # no suggested command carrying the option
    assert not touched.exists() and not (tmp_path / "agent").exists()
