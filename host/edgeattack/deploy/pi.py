"""Deploy a model and the Python agent to a linux board (Raspberry Pi) over SSH, and stop it again.

`flash_pi(...)` runs a fixed plan, each step one OpenSSH call (see `plan_pi`):

1. probe:   the remote dir is the tool's own (or absent); the remote python exists (>= 3.9) and can
            import ai_edge_litert, numpy and serial
2. install: `python -m pip install --user` whatever is missing (skipped with install=False: error)
3. stop:    the agent a previous flash started (pid file; the pid must still be an edgeattack agent)
4. upload:  a tar of the agent's minimal package tree + the 16-byte-aligned model, over ssh's stdin
5. start:   `setsid nohup python -m edgeattack.agent ...` detached, pid file + log file; waits until
            that very process listens on its TCP port (or holds its serial device open)
6. verify:  TCP agents: INFO through the ssh:// port URL (its own tunnel), and the reported model
            SHA-256 == the deployed bytes'

Remote layout (DIR = remote_dir, relative to the login home unless absolute):
    DIR/.edgeattack-deploy   the marker: DIR was created by flash, which may replace what is in it
    DIR/lib/edgeattack/...   the agent's import closure only (no TensorFlow anywhere in it)
    DIR/model.tflite         the exact bytes whose SHA-256 the agent reports
    DIR/deploy.json          what was deployed (sha256, port, runtime, files)
    DIR/agent.pid, DIR/agent.log

flash deploys only into a folder it owns: one it creates (then writes the marker), or one holding the
marker. Any other existing folder is refused before anything runs, since the upload replaces DIR/lib:
`--remote-dir .` would otherwise delete ~/lib, and `/` as root /lib. `/`, `~`, `.`, `..` and paths with
`..` components are refused outright.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import io
import json
import shlex
import tarfile
import time
from pathlib import Path
from typing import Callable

from ..errors import DeviceError, EdgeAttackError, UsageError
from ..link.ssh_target import SSHTarget, tail
from ..link.ssh_tunnel import ssh_url, tunnel_args
from . import ssh

# Remote module -> pip distribution that provides it.
REQUIRED_MODULES = {"numpy": "numpy", "serial": "pyserial", "ai_edge_litert": "ai-edge-litert"}
# Third-party modules the agent may import; anything else outside the stdlib is refused at flash time.
ALLOWED_THIRD_PARTY = {"numpy", "serial", "ai_edge_litert", "tflite_micro"}
FORBIDDEN = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"}
AGENT_MODULE = "edgeattack.agent"
MODEL_NAME = "model.tflite"
DEFAULT_TCP_PORT = 5555
PORT_MODES = ("tcp", "gadget", "uart")
DEFAULT_SERIAL = {"gadget": "/dev/ttyGS0", "uart": "/dev/serial0"}
# The remote dir's ownership marker: its first line must be MARKER_LINE exactly.
MARKER = ".edgeattack-deploy"
MARKER_LINE = "edgeattack deploy folder v1: created by edgeattack flash, which replaces what is in it"
NOT_OURS = "EDGEATTACK_NOT_OURS"  # printed by a remote script that refuses the remote dir (exit 4)


# ---------------------------------------------------------------------------------------------
# What gets copied: the agent's import closure inside the edgeattack package


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent  # .../edgeattack


def _module_file(root: Path, dotted: str) -> Path | None:
    """The source file of edgeattack module `dotted` (a package gives its __init__.py)."""
    rel = dotted.split(".")[1:]
    base = root.joinpath(*rel) if rel else root
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path, dotted: str) -> list[str]:
    """Absolute names of every module imported anywhere in the file (top level or inside functions:
    a lazy import still has to work on the board)."""
    is_pkg = path.name == "__init__.py"
    package = dotted if is_pkg else dotted.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.append(base)
            # `from pkg import sub` may import a submodule: try each name as one
            names += [f"{base}.{a.name}" for a in node.names if a.name != "*"]
    return names


def agent_tree(root: Path | None = None, entry: str = AGENT_MODULE) -> dict[str, bytes]:
    """{relative path under lib/: bytes} of the agent's import closure within the edgeattack package,
    parent packages' __init__.py included. Raises EdgeAttackError when the closure imports
    TensorFlow/Keras or a third-party module the board does not get (the agent must stay light)."""
    root = root or _package_root()
    if _module_file(root, entry) is None:
        raise EdgeAttackError(f"{entry} is not in this edgeattack install ({root}): the agent module is "
                              f"missing; reinstall edgeattack")
    import sys

    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    files: dict[str, Path] = {}
    seen: set[str] = set()
    todo = [entry]
    while todo:
        dotted = todo.pop()
        if dotted in seen:
            continue
        seen.add(dotted)
        path = _module_file(root, dotted)
        if path is None:
            continue  # `from pkg import name` where name is not a module
        parts = dotted.split(".")
        for i in range(1, len(parts)):  # parent packages run their __init__ first
            todo.append(".".join(parts[:i]))
        files[path.relative_to(root.parent).as_posix()] = path
        for name in _imports(path, dotted):
            top = name.split(".")[0]
            if top == "edgeattack":
                todo.append(name)
            elif top in FORBIDDEN:
                raise EdgeAttackError(f"{path}: the agent's import closure imports {name} (via {dotted}); "
                                      f"the board runs without TensorFlow: move that import out of the agent's modules")
            elif top and top not in stdlib and top not in ALLOWED_THIRD_PARTY and top != "__future__":
                raise EdgeAttackError(f"{path}: the agent's import closure imports {name} (via {dotted}), "
                                      f"which the board does not get (allowed: {', '.join(sorted(ALLOWED_THIRD_PARTY))})")
    return {rel: files[rel].read_bytes() for rel in sorted(files)}


# ---------------------------------------------------------------------------------------------
# The model: the exact bytes the board will run


def prepare_model(path: str | Path) -> tuple[bytes, str, bool]:
    """(bytes to deploy, their SHA-256, whether aligning changed them). The device runs the
    16-byte-aligned file (CONVENTIONS: model identity), so an unaligned model is aligned first."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UsageError(f"model {p}: cannot read it ({e.strerror or e}): give an existing .tflite file") from None
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UsageError(f"model {p}: not a .tflite flatbuffer (no TFL3 identifier): give a .tflite file")
    try:
        from ..tflite.align import align_16
    except ImportError:
        aligned = data  # the aligner is optional; the agent hashes whatever it loads
    else:
        aligned = align_16(data, name=str(p))
    return aligned, hashlib.sha256(aligned).hexdigest(), aligned != data


def _bundle(tree: dict[str, bytes], model: bytes, manifest: dict) -> bytes:
    """A gzip tar of lib/<tree>, model.tflite and deploy.json (fixed mtimes: same input, same bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        entries = [(f"lib/{rel}", data) for rel, data in tree.items()]
        entries += [(MODEL_NAME, model), ("deploy.json", json.dumps(manifest, indent=2).encode() + b"\n")]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Remote scripts (POSIX sh, run with `sh -c` whatever the login shell is)


def remote_dir_path(remote_dir: str) -> str:
    """The remote dir as sh will see it: `./X` relative to the login home (where ssh commands start;
    `~/X` is the same), or an absolute path. UsageError for the home itself, `/`, `.`, `..`, paths
    with `..` components and `~user` paths: flash owns what it deploys into, never such a folder."""
    d = (remote_dir or "").strip()
    fix = "give a folder of the agent's own, e.g. edgeattack-agent (flash creates it)"
    if d.startswith("~/"):
        d = d[2:]
    elif d.startswith("~"):
        if d != "~":
            raise UsageError(f"--remote-dir {remote_dir!r}: ~user paths are not supported; give an absolute path")
        d = ""
    names = d.split("/")
    if ".." in names:
        raise UsageError(f"--remote-dir {remote_dir!r}: paths with '..' are refused: {fix}")
    parts = [n for n in names if n not in ("", ".")]
    if not parts:
        raise UsageError(f"--remote-dir {remote_dir!r} is the home, '.' or '/' itself: {fix}")
    return ("/" if d.startswith("/") else "./") + "/".join(parts)


def _dir(remote_dir: str) -> str:
    """The remote dir quoted for sh (see remote_dir_path)."""
    return shlex.quote(remote_dir_path(remote_dir))


def owned_dir_check(remote_dir: str) -> str:
    """sh that sets d=DIR and refuses (prints NOT_OURS, exit 4) when DIR exists but is not a folder
    holding the marker. A missing DIR passes: flash creates it."""
    return (f"d={_dir(remote_dir)}; m={MARKER}; "
            f"if [ -e \"$d\" ] || [ -L \"$d\" ]; then line=; "
            f"{{ [ -d \"$d\" ] && [ -f \"$d/$m\" ] && [ ! -L \"$d/$m\" ] && IFS= read -r line < \"$d/$m\"; }} || :; "
            f"[ \"$line\" = {shlex.quote(MARKER_LINE)} ] || {{ echo {NOT_OURS}; exit 4; }}; fi")


_PROBE_PY = r"""
import importlib, json, sys
missing = []
for name in @MODS@:
    try:
        importlib.import_module(name)
    except Exception as e:
        missing.append(name)
if "ai_edge_litert" not in missing:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except Exception:
        missing.append("ai_edge_litert")
print(json.dumps({"python": sys.version.split()[0], "ok_version": sys.version_info >= (3, 9),
                  "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
                  "executable": sys.executable, "missing": missing}))
"""


# The python helpers go to the remote python on ssh's stdin (`python -`): no second level of shell
# quoting, so --dry-run shows each command readably.
PROBE_CODE = _PROBE_PY.replace("@MODS@", repr(sorted(REQUIRED_MODULES)))


def _py(python: str) -> str:
    """Quoted remote python for sh; `~/x` made relative to the login home (where ssh starts)."""
    p = python.strip()
    if not p:
        raise UsageError("--python: give the python to run on the board (e.g. python3)")
    return shlex.quote(p[2:] if p.startswith("~/") else p)


def probe_script(python: str, remote_dir: str | None = None) -> str:
    """Check that `remote_dir` is the tool's own (owned_dir_check), then run PROBE_CODE (stdin) with
    the remote python; prints EDGEATTACK_NO_PYTHON when it is missing."""
    py = _py(python)
    check = f"{owned_dir_check(remote_dir)}; " if remote_dir is not None else ""
    return f"{check}command -v {py} >/dev/null 2>&1 || {{ echo EDGEATTACK_NO_PYTHON; exit 3; }}; exec {py} -"


def install_script(python: str, packages: list[str], pip_args: list[str]) -> str:
    return f"{_py(python)} -m pip install {shlex.join([*pip_args, *packages])}"


def stop_script(remote_dir: str) -> str:
    """Stop the agent named in DIR/agent.pid, if that pid is still an edgeattack agent (never a pid
    that was reused by another program); TERM, up to 5 s, then KILL. A zombie counts as gone.
    Only in a folder the tool owns (owned_dir_check)."""
    return f"""{owned_dir_check(remote_dir)}
cd "$d" 2>/dev/null || exit 0
[ -f agent.pid ] || exit 0
pid=$(cat agent.pid)
gone() {{ [ ! -d /proc/$pid ] || [ "$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -c1)" = Z ]; }}
case "$pid" in ''|*[!0-9]*) rm -f agent.pid; exit 0;; esac
if ! gone && tr '\\000' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -q 'edgeattack[.]agent'; then
  kill "$pid" 2>/dev/null
  i=0; while ! gone && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  gone || kill -9 "$pid" 2>/dev/null
  i=0; while ! gone && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done
  echo "stopped agent $pid"
fi
rm -f agent.pid"""


def upload_script(remote_dir: str) -> str:
    """Replace DIR's lib/, model and manifest with the tar on stdin (extracted by tar). DIR must be
    the tool's own (owned_dir_check); a missing DIR is created with the marker."""
    return (f"set -e; {owned_dir_check(remote_dir)}; "
            f"if [ ! -e \"$d\" ]; then mkdir -p \"$d\"; printf '%s\\n' {shlex.quote(MARKER_LINE)} > \"$d/$m\"; fi; "
            f"cd \"$d\"; rm -rf lib.new; mkdir lib.new; "
            f"tar -xzf - -C lib.new; rm -rf lib; mv lib.new/lib lib; "
            f"mv lib.new/{MODEL_NAME} {MODEL_NAME}; mv lib.new/deploy.json deploy.json; rm -rf lib.new")


_READY_PY = r"""
import hashlib, json, os, sys, time
mode, target, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])  # run as `python - ARGS`
def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
def fds(pid):
    out = []
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for n in names:
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, n)))
        except OSError:
            pass
    return out
def listening(port):
    want, found = "0100007F:%04X" % port, set()
    for table in ("/proc/net/tcp",):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                c = line.split()
                if len(c) > 9 and c[1] == want and c[3] == "0A":
                    found.add("socket:[%s]" % c[9])
    return found
pid, deadline, state = None, time.monotonic() + timeout, "timeout"
while time.monotonic() < deadline:
    if pid is None:
        try:
            pid = int(open("agent.pid").read().strip())
        except (OSError, ValueError):
            time.sleep(0.05); continue
    if not alive(pid):
        state = "died"; break
    links = fds(pid)
    if mode == "tcp" and listening(int(target)) & set(links):
        state = "ready"; break
    if mode == "serial" and os.path.realpath(target) in [os.path.realpath(l) for l in links]:
        state = "ready"; break
    time.sleep(0.1)
log = ""
if state != "ready":
    try:
        log = open("agent.log", errors="replace").read()[-600:]
    except OSError:
        pass
sha = hashlib.sha256(open("@MODEL@", "rb").read()).hexdigest()
print(json.dumps({"state": state, "pid": pid, "sha256": sha, "log": log}))
"""


def start_script(remote_dir: str, python: str, agent_port: str, runtime: str, ready_timeout: float,
                 board: str = "pi4", kernels: str = "auto") -> str:
    """Start the agent detached from the SSH session (setsid + nohup, stdio to the log), its pid in
    agent.pid (written by the shell that then execs python, so it is python's pid), then wait until
    that process listens on its TCP port or holds its serial device open (READY_CODE on stdin).
    Only in a folder the tool owns (owned_dir_check)."""
    # the absolute model path makes `ps` show which deployment an agent belongs to
    agent = (f"-m {AGENT_MODULE} --model \"$PWD/{MODEL_NAME}\" "
             + shlex.join(["--port", agent_port, "--runtime", runtime, "--board", board, "--kernels", kernels]))
    if agent_port.startswith("tcp://"):
        mode, what = "tcp", agent_port.rsplit(":", 1)[1]
    else:
        mode, what = "serial", agent_port
    # a relative python path (a venv in the home) is made absolute before `cd DIR`
    return (f"set -e; {owned_dir_check(remote_dir)}; "
            f"py={_py(python)}; case \"$py\" in /*) ;; */*) py=\"$PWD/$py\";; esac; "
            f"cd \"$d\"; rm -f agent.pid; : > agent.log; "
            f"PYTHONPATH=\"$PWD/lib\" setsid nohup sh -c 'echo $$ > agent.pid; exec \"$0\" \"$@\"' "
            f"\"$py\" {agent} </dev/null >>agent.log 2>&1 & "
            f"exec \"$py\" - {mode} {shlex.quote(what)} {ready_timeout:g}")


READY_CODE = _READY_PY.replace("@MODEL@", MODEL_NAME)


# ---------------------------------------------------------------------------------------------
# Plan and execution


@dataclasses.dataclass
class Step:
    name: str
    description: str
    argv: list[str]
    stdin: str | None = None  # what goes to ssh's stdin, described for --dry-run
    script: str | None = None  # the remote sh script (the last argv item is `sh -c <it, quoted>`)

    def render(self) -> list[str]:
        """Readable lines for --dry-run: the ssh command, then the remote script it runs under
        `sh -c` (printed as is rather than quoted twice)."""
        if self.script is None:
            return ["$ " + shlex.join(self.argv)]
        return ["$ " + shlex.join(self.argv[:-1]) + " sh -c SCRIPT", *("  | " + line for line in self.script.splitlines())]


@dataclasses.dataclass
class PiDeploy:
    """Everything one deployment needs; `plan()` lists the commands `flash_pi` runs."""

    target: SSHTarget
    model_path: Path
    remote_dir: str = "edgeattack-agent"
    python: str = "python3"
    agent_port: str = f"tcp://127.0.0.1:{DEFAULT_TCP_PORT}"
    runtime: str = "litert"
    board: str = "pi4"
    kernels: str = "auto"  # the agent's LiteRT kernels: auto (XNNPACK where it applies) or ref
    install: bool = True
    pip_args: list[str] | None = None  # None: --user, or nothing when the remote python is a venv
    ready_timeout: float = 60.0

    def packages(self, missing: list[str]) -> list[str]:
        """pip requirements for missing modules; LiteRT pinned to the host's version, so the board
        computes with the same kernels as the host's reference runs."""
        from importlib import metadata

        out = []
        for mod in missing:
            dist = REQUIRED_MODULES[mod]
            try:
                out.append(f"{dist}=={metadata.version(dist)}" if dist == "ai-edge-litert" else dist)
            except metadata.PackageNotFoundError:
                out.append(dist)
        return out

    def pip(self, venv: bool) -> list[str]:
        if self.pip_args is not None:
            return list(self.pip_args)
        return [] if venv else ["--user"]

    def plan(self, tree_files: list[str] | None = None) -> list[Step]:
        """Every command flash_pi may run, in order (install runs only when modules are missing)."""
        t = self.target
        pip = "--user; none in a venv" if self.pip_args is None else shlex.join(self.pip_args)
        rows = [
            ("probe", f"check that {self.python} runs on {t.label} and imports "
                      f"{', '.join(sorted(REQUIRED_MODULES))}",
             probe_script(self.python, self.remote_dir),
             f"python code ({len(PROBE_CODE.splitlines())} lines: try each import, print JSON)"),
            ("install", "only if some are missing" + ("" if self.install else " (refused: --no-install)")
                        + f": pip-install them ({pip})",
             install_script(self.python, self.packages(sorted(REQUIRED_MODULES)), self.pip(False)), None),
            ("stop", "stop the agent a previous flash left running (pid file)", stop_script(self.remote_dir), None),
            ("upload", f"copy the agent and the model into {self.remote_dir}", upload_script(self.remote_dir),
             f"gzip tar of {MODEL_NAME}, deploy.json and lib/: " + ", ".join(tree_files or [])),
            ("start", f"start the agent detached on {self.agent_port} and wait until it listens",
             start_script(self.remote_dir, self.python, self.agent_port, self.runtime, self.ready_timeout,
                          self.board, self.kernels),
             f"python code ({len(READY_CODE.splitlines())} lines: wait until the agent's pid listens or holds "
             f"its serial device; print that and the model's SHA-256 as JSON)"),
        ]
        steps = [Step(name, desc, t.ssh_args() + [ssh.remote_command(script)], stdin=stdin, script=script)
                 for name, desc, script, stdin in rows]
        if self.agent_port.startswith("tcp://"):
            rport = int(self.agent_port.rsplit(":", 1)[1])
            argv = [a.replace("127.0.0.1:0:", "127.0.0.1:LOCALPORT:") for a in tunnel_args(t, 0, rport)]
            steps.append(Step("verify", "open the agent's ssh:// port URL (its own tunnel; LOCALPORT: a free "
                              "local port), ask INFO, compare its model SHA-256", argv))
        return steps


@dataclasses.dataclass
class DeployResult:
    host: str
    remote_dir: str
    agent_port: str
    pid: int | None
    model_sha256: str
    aligned: bool
    port_url: str | None  # what session/attack commands pass as --port (None for serial agents)
    installed: list[str]
    info: dict | None


def _check(proc, target: SSHTarget, what: str, remote_dir: str) -> str:
    out = proc.stdout.decode(errors="replace")
    _refuse_unowned(out, target, remote_dir)
    if proc.returncode != 0:
        err = " ".join((proc.stderr.decode(errors="replace") or out).split())
        raise DeviceError(f"{target.label}: {what} failed (exit {proc.returncode}: {tail(err, 300) or 'no message'})")
    return out


def _refuse_unowned(out: str, target: SSHTarget, remote_dir: str) -> None:
    if NOT_OURS in out.split():
        raise UsageError(f"--remote-dir {remote_dir}: the folder exists on {target.label} but was not created by "
                         f"edgeattack flash (no {MARKER} marker); refused, since flash replaces what is in it: "
                         f"give a new folder name (flash creates it), or remove that folder on the board yourself")


def _probe(dep: PiDeploy) -> dict:
    proc = ssh.run(dep.target, probe_script(dep.python, dep.remote_dir), input=PROBE_CODE.encode(),
                   what="probe", timeout=120)
    out = proc.stdout.decode(errors="replace")
    _refuse_unowned(out, dep.target, dep.remote_dir)
    if "EDGEATTACK_NO_PYTHON" in out:
        raise DeviceError(f"{dep.target.label}: remote python {dep.python!r} not found: install it "
                          f"(`sudo apt install python3 python3-venv`) or pass --python /path/to/python3")
    try:
        report = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        err = " ".join(proc.stderr.decode(errors="replace").split())
        raise DeviceError(f"{dep.target.label}: remote python {dep.python!r} did not run "
                          f"({tail(err) or 'no output'}): check it, or pass --python /path/to/python3") from None
    if not report["ok_version"]:
        raise DeviceError(f"{dep.target.label}: remote python {dep.python!r} is {report['python']}; the agent "
                          f"needs 3.9 or newer: install a newer python3 or pass --python")
    return report


def query_info(url: str, timeout: float = 20.0) -> dict:
    """INFO from the agent at pyserial URL `url` (one connection, closed afterwards)."""
    from ..link.client import Client
    from ..link.transport import open_port

    with Client(lambda: open_port(url), timeout=2.0, total_timeout=timeout) as client:
        return client.connect()


def verify_info(info: dict, expected_sha256: str, label: str) -> None:
    """Raise DeviceError when the agent runs other bytes than the ones deployed (or failed to load)."""
    if info.get("error"):
        raise DeviceError(f"{label}: the agent could not load the model ({info['error']}): check "
                          f"agent.log in the remote dir")
    got = info.get("model_sha256")
    if got != expected_sha256:
        raise DeviceError(f"{label}: model hash mismatch: the agent reports {got}, the deployed file is "
                          f"{expected_sha256}: flash again (another agent may hold the port)")


def flash_pi(dep: PiDeploy, *, dry_run: bool = False,
             echo: Callable[[str], None] = print) -> DeployResult | list[Step]:
    """Deploy and start the agent (see the module doc). With dry_run, print the plan and return it,
    touching nothing (no connection is made). Errors: DeviceError/UsageError, one line each."""
    remote_dir_path(dep.remote_dir)  # refuse a folder flash may not own before anything else
    if dep.runtime != "litert":
        raise UsageError(f"board {dep.board}: runtime {dep.runtime!r} is not available on a linux board "
                         f"(tflite-micro has no aarch64 wheel): use runtime litert")
    model, sha, changed = prepare_model(dep.model_path)
    tree = agent_tree()
    if dry_run:
        steps = dep.plan(sorted(tree))
        echo(f"# plan for {dep.target.label} (dry run: nothing is executed)")
        echo(f"# model {dep.model_path}: {len(model)} bytes{', 16-byte aligned first' if changed else ''}, "
             f"sha256 {sha}")
        for i, s in enumerate(steps, 1):
            echo(f"# {i}. {s.name}: {s.description}")
            if s.stdin:
                echo(f"#    stdin: {s.stdin}")
            for line in s.render():
                echo(line)
        return steps

    t = dep.target
    report = _probe(dep)
    installed: list[str] = []
    if report["missing"]:
        pkgs = dep.packages(report["missing"])
        if not dep.install:
            raise DeviceError(f"{t.label}: {dep.python} lacks {', '.join(report['missing'])} and --no-install was "
                              f"given: install them on the board ({shlex.join([dep.python, '-m', 'pip', 'install', *pkgs])}) "
                              f"or drop --no-install")
        echo(f"installing {' '.join(pkgs)} on {t.label} ...")
        proc = ssh.run(t, install_script(dep.python, pkgs, dep.pip(report["venv"])), what="pip install", timeout=1800)
        if proc.returncode != 0:
            err = " ".join(proc.stderr.decode(errors="replace").split())
            hint = ("the system python is externally managed: create a venv on the board "
                    "(`python3 -m venv ~/edgeattack-venv`) and pass --python ~/edgeattack-venv/bin/python"
                    if "externally-managed" in err else "install them by hand on the board")
            raise DeviceError(f"{t.label}: pip install {' '.join(pkgs)} failed ({tail(err)}): {hint}")
        installed = pkgs
        report = _probe(dep)
        if report["missing"]:
            raise DeviceError(f"{t.label}: {dep.python} still cannot import {', '.join(report['missing'])} after "
                              f"pip install: check the board's python (`{dep.python} -m pip list`)")

    _check(ssh.run(t, stop_script(dep.remote_dir), what="stop"), t, "stopping the previous agent", dep.remote_dir)
    manifest = {"model_sha256": sha, "model_source": dep.model_path.name, "board": dep.board,
                "agent_port": dep.agent_port, "runtime": dep.runtime, "kernels": dep.kernels, "python": dep.python,
                "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": sorted(tree)}
    bundle = _bundle(tree, model, manifest)
    _check(ssh.run(t, upload_script(dep.remote_dir), input=bundle, what="upload"), t,
           f"copying the agent into {dep.remote_dir}", dep.remote_dir)

    out = _check(ssh.run(t, start_script(dep.remote_dir, dep.python, dep.agent_port, dep.runtime,
                                         dep.ready_timeout, dep.board, dep.kernels), input=READY_CODE.encode(), what="start", timeout=dep.ready_timeout + 60),
                 t, "starting the agent", dep.remote_dir)
    state = json.loads(out.strip().splitlines()[-1])
    if state["sha256"] != sha:
        raise DeviceError(f"{t.label}: model hash mismatch after upload ({state['sha256']} on the board, {sha} "
                          f"here): the copy was corrupted; flash again")
    if state["state"] != "ready":
        log = " | ".join(line for line in state["log"].splitlines() if line.strip())[-300:]
        why = "exited" if state["state"] == "died" else f"did not open {dep.agent_port} within {dep.ready_timeout:g} s"
        raise DeviceError(f"{t.label}: the agent {why} (agent.log: {log or 'empty'}): fix the cause, then flash again")

    info, url = None, None
    if dep.agent_port.startswith("tcp://"):
        host, _, rport = dep.agent_port[len("tcp://"):].rpartition(":")
        url = ssh_url(t, int(rport), host or "127.0.0.1")
        try:
            info = query_info(url)  # through the URL's own tunnel, as every later command does
            verify_info(info, sha, t.label)
        except BaseException:
            stop_pi(t, dep.remote_dir)  # never leave an unverified agent running
            raise
    return DeployResult(host=t.label, remote_dir=dep.remote_dir, agent_port=dep.agent_port, pid=state["pid"],
                        model_sha256=sha, aligned=changed, port_url=url, installed=installed, info=info)


def stop_pi(target: SSHTarget, remote_dir: str) -> str:
    """Stop the agent deployed in `remote_dir` (no-op when none runs); returns what was done."""
    out = _check(ssh.run(target, stop_script(remote_dir), what="stop"), target, "stopping the agent", remote_dir)
    return out.strip() or "no agent running"


def port_url(profile, host: str | None = None, identity: str | None = None) -> str:
    """The --port URL of a deployed linux board's agent: ssh://... for a TCP agent (each command opens
    its own tunnel), else the profile's serial port. `host` ([user@]host[:port]) overrides the
    profile's deploy.user/host/ssh_port."""
    deploy = profile.deploy or {}
    agent_port = deploy.get("agent_port") or f"tcp://127.0.0.1:{DEFAULT_TCP_PORT}"
    if not agent_port.startswith("tcp://"):
        if not profile.port:
            raise UsageError(f"board {profile.name}: its agent is on a serial port; give the host side with --port")
        return profile.port
    target = target_for(profile, host, identity)
    rhost, _, rport = agent_port[len("tcp://"):].rpartition(":")
    return ssh_url(target, int(rport), rhost or "127.0.0.1")


def target_for(profile, host: str | None = None, identity: str | None = None,
               config: str | None = None) -> SSHTarget:
    """The SSH target: `--host` when given, else the profile's deploy.user@host:ssh_port."""
    deploy = profile.deploy or {}
    if host:
        return SSHTarget.parse(host, identity=identity, config=config)
    if not deploy.get("host"):
        raise UsageError(f"board {profile.name}: no host: pass --host user@host")
    return SSHTarget(host=deploy["host"], user=deploy.get("user"), port=deploy.get("ssh_port"),
                         identity=identity, config=config)
