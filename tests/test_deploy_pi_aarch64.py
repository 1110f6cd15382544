"""Deploying to the Raspberry Pi's own software: Debian 12 arm64 under emulation plays the Pi.

tools/pi_rootfs.sh (run by tools/setup.sh) builds and caches the root filesystem: debootstrap's
arm64 bookworm, python3, OpenSSH's server and a venv with the real aarch64 ai-edge-litert wheel. Here
its sshd runs under `proot -q qemu-aarch64-static` on a free loopback port, and `edgeattack flash
--board pi4` deploys to it over the real SSH path, with --no-install: the wheels came with the set-up,
so the test needs no network. Every program inside is aarch64 code, emulated about 10-30x slower than
native, so the work is small: one tiny model, eight inputs.

Both sides run LiteRT's reference kernels (--kernels ref): XNNPACK's rounding differs per instruction
set, the reference kernels' integer arithmetic does not, so the Pi's outputs equal the host's in-process
LiteRT byte for byte.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import IN_CI, require_tool, run_cli
from edgeattack import children
from edgeattack.link.transport import free_local_port

ROOTFS = Path(os.environ.get("EDGEATTACK_PI_ROOTFS") or
              Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeattack" /
              "pi-rootfs-bookworm-arm64")
VENV_PYTHON = "/opt/edgeattack-venv/bin/python"  # tools/pi_rootfs.sh installs the agent's wheels there
MOUNT = "/edgeattack-test"  # the test's temp dir as seen inside the root


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeattack-test", "-f", str(path)],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def pi_sshd(tmp_path_factory):
    """sshd of the arm64 root on 127.0.0.1:PORT under proot; yields (host, ssh_config, tmp dir)."""
    require_tool("proot", "qemu-aarch64-static", "ssh", "ssh-keygen")
    stamp = ROOTFS.with_name(ROOTFS.name + ".stamp")
    if not stamp.is_file() or not (ROOTFS / VENV_PYTHON.lstrip("/")).exists():
        msg = f"no Pi root filesystem in {ROOTFS}: build it with tools/pi_rootfs.sh (make test does)"
        if IN_CI:
            pytest.fail(f"CI=true and {msg}")
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("pi-aarch64")
    (d / "run-sshd").mkdir(mode=0o755)  # sshd's privilege separation dir, kept out of the cache
    _keygen(d / "host_key")
    _keygen(d / "id_user")
    (d / "authorized_keys").write_text((d / "id_user.pub").read_text())
    host_pub = " ".join((d / "host_key.pub").read_text().split()[:2])
    # LiteRT's cpuinfo reads /sys/devices/system/cpu: the host's x86 one crashes it (SIGSEGV in the
    # Interpreter's constructor), so the root gets a Pi-like one (one core is enough here)
    cpu = d / "sys" / "devices" / "system" / "cpu"
    cpu.mkdir(parents=True)
    for name in ("present", "possible", "online"):
        (cpu / name).write_text("0\n")
    root_argv = ["proot", "-q", "qemu-aarch64-static", "-0", "-r", str(ROOTFS), "-w", "/", "-b", "/dev",
                 "-b", "/proc", "-b", f"{d / 'sys'}:/sys", "-b", f"{d}:{MOUNT}", "-b", f"{d / 'run-sshd'}:/run/sshd"]
    for _attempt in range(3):  # another process may take the free port first
        port = free_local_port()
        (d / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1:{port}
HostKey {MOUNT}/host_key
PidFile {MOUNT}/sshd.pid
AuthorizedKeysFile {MOUNT}/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
""")
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
        (d / "ssh_config").write_text(f"""\
Host *
  UserKnownHostsFile {d}/known_hosts
  GlobalKnownHostsFile /dev/null
  IdentityFile {d}/id_user
  IdentitiesOnly yes
  LogLevel ERROR
""")
        log = open(d / "sshd.log", "wb")
        proc = children.spawn([*root_argv, "/usr/sbin/sshd", "-D", "-e", "-f", f"{MOUNT}/sshd_config"],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 120  # sshd starts in a few seconds under emulation
        while proc.poll() is None and time.monotonic() < deadline:
            if b"Server listening" in (d / "sshd.log").read_bytes():
                break
            time.sleep(0.2)
        if proc.poll() is None and b"Server listening" in (d / "sshd.log").read_bytes():
            break
        children.stop(proc)
        log.close()
    else:
        raise RuntimeError(f"sshd in {ROOTFS} did not start: {(d / 'sshd.log').read_text()[-1000:]}")
    try:
        yield f"root@127.0.0.1:{port}", str(d / "ssh_config"), d
    finally:
        children.stop(proc)  # proot kills every process it traces when it goes
        log.close()
        for pid in _pids_mentioning(str(d)) + _pids_mentioning(MOUNT + "/"):  # anything that outlived proot
            os.kill(pid, signal.SIGKILL)


def test_flash_pi4_aarch64_session_matches_litert_reference(pi_sshd, tiny_tflite, tiny_dataset, tmp_path):
    from edgeattack.quant import quantize_input
    from edgeattack.results import RESULTS, SUMMARY
    from edgeattack.tflite.runtimes import LiteRTRunner

    host, config, d = pi_sshd
    rdir = f"{MOUNT}/agent"
    flash = ["flash", "--board", "pi4", "--host", host, "--ssh-config", config, "--remote-dir", rdir]
    proc = run_cli(*flash, "--python", VENV_PYTHON, "--remote-port", str(free_local_port()), "--kernels", "ref",
                   "--no-install", "--json", tiny_tflite, timeout=900)
    try:
        assert proc.returncode == 0, proc.stderr
        deployed = json.loads(proc.stdout)
        info = deployed["info"]  # INFO asked through the agent's own ssh:// tunnel
        assert info["machine"] == "aarch64" and info["kernels"] == "ref" and info["runtime"] == "litert"
        assert deployed["installed"] == []  # the set-up's wheels: nothing fetched at test time
        # the agent is an aarch64 process (qemu-aarch64-static runs it) from the shipped tree
        pid = int((d / "agent" / "agent.pid").read_text())
        assert "qemu-aarch64" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        url = deployed["port_url"]
        assert url.startswith(f"ssh://{host}/127.0.0.1:")

        _, _, x_test, y_test = tiny_dataset
        inputs = tmp_path / "clean.npz"
        np.savez(inputs, x=x_test[:8], y=y_test[:8])
        model = d / "agent" / "model.tflite"
        run = run_cli("session", "--board", "pi4", "--model", model, "--inputs", inputs, "--port", url,
                      "--no-progress", "-o", tmp_path / "run", timeout=900)
        assert run.returncode == 0, run.stderr
        assert json.loads((tmp_path / "run" / SUMMARY).read_text())["status"] == "complete"
        records = [json.loads(line) for line in (tmp_path / "run" / RESULTS).read_text().splitlines()]
        q = info["input"]
        x_q = quantize_input(x_test[:8], q["scale"], q["zero_point"])
        ref = LiteRTRunner(model.read_bytes(), resolver="reference")
        want = [ref.run(x[None]).reshape(-1).tolist() for x in x_q]
        assert [r["output_raw"] for r in records] == want
    finally:
        stop = run_cli(*flash, "--stop", timeout=300)
    assert stop.returncode == 0, stop.stderr
    assert not (d / "agent" / "agent.pid").exists()
