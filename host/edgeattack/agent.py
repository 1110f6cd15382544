"""The device agent: serves one .tflite model over the wire protocol (docs/protocol.md).

    python -m edgeattack.agent --model m.tflite --port URL --runtime litert|tflm [--board NAME]
                               [--kernels auto|ref]

It is the "firmware" of the emulated boards (emu-litert, emu-tflm: the host starts it behind a pty)
and of the Raspberry Pi (started by `edgeattack flash`). It must run on a Pi that has only numpy,
pyserial and ai-edge-litert plus its import closure in this package (edgeattack/__init__.py,
errors.py, quant.py, agent.py, link/ and tflite/{reader,runtimes}.py: the same runners the host uses),
so nothing it imports may import TensorFlow (deploy.pi.agent_tree checks at flash time).

Port URLs the agent accepts (`--port`):
  tcp://HOST:PORT      listen on HOST:PORT (PORT 0: any free port; the agent prints the one it got) and
                       serve one connection at a time, accepting the next when it closes. On the Pi
                       use tcp://127.0.0.1:PORT and reach it through an SSH tunnel.
  fd://N               an inherited, already open file descriptor (a pty master: the emulated boards).
  anything else        a serial device or pyserial URL opened with serial_for_url (/dev/ttyGS0,
                       /dev/pts/N, rfc2217://...); reopened if it goes away.

The model's SHA-256 is of the exact file bytes. A model that cannot be loaded (corrupt file,
unsupported operator, interpreter crash) does not stop the agent: INFO carries "error" and LOAD /
INFER answer ERROR MODEL with the reason. Device ticks come from time.perf_counter_ns (1 GHz).
INFO also names the kernels ("auto": LiteRT's default, XNNPACK where it applies; "ref": its reference
kernels, whose integer arithmetic is the same on every instruction set) and the processor
(`platform.machine()`, e.g. aarch64 on a Pi).
SIGTERM / SIGINT stop it cleanly (exit 0).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import select
import signal
import socket
import sys
import threading
import time

import numpy as np

from edgeattack.link import messages as m
from edgeattack.link.server import ProtocolServer
from edgeattack.link.transport import FdPort, SocketPort, open_port

TICK_HZ = 1_000_000_000  # perf_counter_ns
RUNTIMES = ("litert", "tflm")
# LiteRT's kernel choice: XNNPACK rounds differently on each instruction set; "ref" gives outputs
# identical to the host's LiteRT reference kernels whatever the board's processor.
KERNELS = {"auto": "auto", "ref": "reference"}
DEFAULT_TFLM_ARENA = 4 << 20  # generous: a too-small TFLM arena segfaults instead of raising
# Replies kept for retransmission: also the host's window of requests in flight. A deep window
# lets a host keep many small inputs queued, so neither side waits for the other to be scheduled.
DEFAULT_REPLY_CACHE = 64


class ModelError(m.ProtocolError):
    """The model cannot be served; every LOAD / INFER is answered ERROR MODEL with this reason."""

    def __init__(self, message: str):
        super().__init__(m.ERR_MODEL, message)


# runtimes ------------------------------------------------------------------------------------------

def _runner(model: bytes, runtime: str, options: dict):
    """The host runtimes' runner (tflite/runtimes.py: TensorFlow-free, so it ships to the Pi too):
    LiteRT with its default or its reference kernels (options["kernels"]), one thread (as on a
    device: one core, deterministic), or TFLM's reference kernels."""
    from edgeattack.tflite.runtimes import LiteRTRunner, TFLMRunner

    if runtime == "litert":
        runner = LiteRTRunner(model, resolver=KERNELS[options.get("kernels", "auto")], name="model")
    else:
        runner = TFLMRunner(model, arena_size=options.get("arena_bytes", DEFAULT_TFLM_ARENA), name="model")
    if len(runner.info.outputs) != 1:
        raise ModelError(f"the model has {len(runner.info.outputs)} outputs; the agent serves models "
                         f"with one input and one output")
    return runner


def _probe(model: bytes, runtime: str, options: dict) -> str | None:
    """Load the model and run it once on zeros in a forked child; return None or why it failed.

    The interpreters can crash the process (TFLM segfaults on some bad models or small arenas)
    instead of raising, so the agent tries first where a crash cannot take it down.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running any parent cleanup
        code = 0
        try:
            os.close(read_fd)
            runner = _runner(model, runtime, options)
            d = runner.input_details
            runner.run(np.zeros(d.shape, dtype=d.dtype))
            os.write(write_fd, b"ok")
        except BaseException as exc:  # noqa: BLE001 - everything becomes the reason text
            os.write(write_fd, _reason(exc).encode("utf-8", "replace")[:2000])
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"the {runtime} interpreter crashed ({name}) loading or running the model"
    if text == "ok":
        return None
    return text or f"the {runtime} interpreter failed (exit status {os.waitstatus_to_exitcode(status)})"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ModelError) else f"{type(exc).__name__}: {text}"


# handler -------------------------------------------------------------------------------------------

class ModelHandler:
    """The ProtocolServer handler: one model in one runtime (see link.server.Handler)."""

    def __init__(self, model_path: str, runtime: str, board: str, probe: bool = True, **options):
        self.board = board
        self.runtime = runtime
        self.model_path = model_path
        self.options = options
        self.error: str | None = None
        self.runner = None
        self.model_sha256 = None
        try:
            with open(model_path, "rb") as f:
                model = f.read()
        except OSError as exc:
            self.error = f"cannot read model {model_path}: {exc.strerror or exc}"
            return
        self.model_sha256 = hashlib.sha256(model).hexdigest()
        try:
            if probe:
                failure = _probe(model, runtime, options)
                if failure is not None:
                    raise ModelError(failure)
            self.runner = _runner(model, runtime, options)
            d_in, d_out = self.runner.input_details, self.runner.output_details
            self._in_dtype = d_in.dtype
            self._in_wire = self._in_dtype.newbyteorder("<")
            self._in_shape = tuple(d_in.shape)
            self._in_code = m.dtype_code(self._in_dtype)
            self._in_bytes = int(np.prod(self._in_shape)) * self._in_dtype.itemsize
            self._out_code = m.dtype_code(d_out.dtype)
            # Little-endian tensors of the native dtype need no conversion either way.
            self._in_as_is = self._in_wire == self._in_dtype
            self._out_as_is = d_out.dtype.newbyteorder("<") == d_out.dtype
        except Exception as exc:  # noqa: BLE001 - any load failure is served as ERROR MODEL
            self.runner = None
            self.error = f"cannot load model {os.path.basename(model_path)} with {runtime}: {_reason(exc)}"

    def _check(self) -> None:
        if self.runner is None:
            raise ModelError(self.error)

    def info(self) -> dict:
        info = {"board": self.board, "runtime": self.runtime, "model_sha256": self.model_sha256,
                "tick_hz": TICK_HZ, "machine": platform.machine(),
                "kernels": self.options.get("kernels", "auto") if self.runtime == "litert" else "ref"}
        if self.runner is not None:
            info["input"] = self.runner.input_details.describe()
            info["output"] = self.runner.output_details.describe()
        if self.error is not None:
            info["error"] = self.error
        return info

    def input_spec(self) -> tuple[int, int]:
        self._check()
        return self._in_code, self._in_bytes

    def ticks(self) -> int:
        return time.perf_counter_ns()

    def infer(self, input_bytes: bytes, repeat: int) -> tuple[bytes, int, int]:
        runner = self.runner
        if runner is None:
            raise ModelError(self.error)
        x = np.frombuffer(input_bytes, dtype=self._in_wire).reshape(self._in_shape)
        x = x if self._in_as_is else x.astype(self._in_dtype)
        # The window includes setting the input again before each invoke (runner.run: TFLM reuses
        # its memory; the C firmware plans around it instead): a copy, small beside an invoke.
        start = time.perf_counter_ns()
        out = runner.run(x, repeat)
        ticks = time.perf_counter_ns() - start
        if not self._out_as_is:
            out = out.astype(out.dtype.newbyteorder("<"))
        return out.tobytes(), self._out_code, ticks  # tobytes(): C order whatever the layout

    def reset(self) -> None:
        if self.runner is not None:
            self.runner.reset()


# serving -------------------------------------------------------------------------------------------

def _serve_tcp(server: ProtocolServer, host: str, port: int, stop: threading.Event) -> None:
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        raise SystemExit(f"edgeattack agent: cannot listen on tcp://{host}:{port}: {exc.strerror or exc}")
    listener.listen(1)
    bound = listener.getsockname()[1]
    print(f"edgeattack agent: listening on tcp://{host}:{bound}", flush=True)
    try:
        while not stop.is_set():
            ready, _, _ = select.select([listener], [], [], 0.1)
            if not ready:
                continue
            conn, peer = listener.accept()
            port_obj = SocketPort(conn, name=f"tcp://{peer[0]}:{peer[1]}")
            server.attach(port_obj)
            try:
                server.serve_forever(stop)  # returns when the peer disconnects
            finally:
                port_obj.close()
    finally:
        listener.close()


def _serve_port(server: ProtocolServer, opener, stop: threading.Event) -> None:
    """Serve a serial port or fd; after an error (peer gone, EIO) wait a little and go on."""
    port_obj = None
    try:
        while not stop.is_set():
            if port_obj is None:
                try:
                    port_obj = opener()
                except Exception as exc:  # noqa: BLE001 - e.g. a USB gadget not yet configured
                    print(f"edgeattack agent: {exc}; retrying", file=sys.stderr, flush=True)
                    stop.wait(1.0)
                    continue
                server.attach(port_obj)
            server.serve_forever(stop)
            if stop.is_set():
                break
            # serve_forever returned: the port failed. A fd stays; a serial port is reopened.
            if not isinstance(port_obj, FdPort):
                port_obj.close()
                port_obj = None
            stop.wait(0.05)
    finally:
        if port_obj is not None:
            port_obj.close()


# A host process has RAM to spare: 16 slots let a black-box attack keep 16 samples patched.
DEFAULT_SLOTS = 16


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m edgeattack.agent",
                                description="Serve a .tflite model over the edgeattack wire protocol.")
    p.add_argument("--model", required=True, help=".tflite model file")
    p.add_argument("--port", required=True,
                   help="tcp://HOST:PORT (listen), fd://N (inherited fd) or a serial device / pyserial URL")
    p.add_argument("--runtime", required=True, choices=RUNTIMES)
    p.add_argument("--board", default="agent", help="board name reported in INFO")
    p.add_argument("--kernels", choices=tuple(KERNELS), default="auto",
                   help="litert: auto = LiteRT's default (XNNPACK where it applies), ref = its reference "
                        "kernels (the same integers on every processor); tflm runs reference kernels either way")
    p.add_argument("--tick-hz", type=int, default=TICK_HZ,
                   help="tick rate reported in INFO (ticks are perf_counter_ns: only 1e9 is exact)")
    p.add_argument("--baudrate", type=int, default=115200, help="for serial devices")
    p.add_argument("--arena-bytes", type=int, default=DEFAULT_TFLM_ARENA, help="TFLM tensor arena size")
    p.add_argument("--max-payload", type=int, default=4096, help="largest request payload accepted")
    p.add_argument("--reply-cache", type=int, default=DEFAULT_REPLY_CACHE,
                   help="replies kept for retransmission (the host keeps at most this many requests "
                        "in flight)")
    p.add_argument("--slots", type=int, default=DEFAULT_SLOTS,
                   help="input slots of protocol v2 (INFO slots; black-box attacks pin one sample to "
                        "each, so this many samples can be patched at once)")
    p.add_argument("--no-probe", action="store_true",
                   help="load the model directly instead of first trying it in a forked child")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tick_hz != TICK_HZ:
        raise SystemExit("edgeattack agent: --tick-hz must be 1000000000 (ticks are perf_counter_ns)")
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    options = {"arena_bytes": args.arena_bytes} if args.runtime == "tflm" else {"kernels": args.kernels}
    handler = ModelHandler(args.model, args.runtime, args.board, probe=not args.no_probe, **options)
    if handler.error:
        print(f"edgeattack agent: {handler.error} (serving the error)", file=sys.stderr, flush=True)
    if args.reply_cache < 1:
        raise SystemExit("edgeattack agent: --reply-cache must be at least 1")
    if not 1 <= args.slots <= 255:
        raise SystemExit("edgeattack agent: --slots must be 1..255")
    server = ProtocolServer(None, handler, max_payload=args.max_payload, reply_cache=args.reply_cache,
                            slots=args.slots)
    url = args.port
    if url.startswith("tcp://"):
        host, _, port = url[len("tcp://"):].rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            port_no = int(port)
        except ValueError:
            raise SystemExit(f"edgeattack agent: bad --port {url} (expected tcp://HOST:PORT)") from None
        _serve_tcp(server, host, port_no, stop)
    elif url.startswith("fd://"):
        fd = int(url[len("fd://"):])
        _serve_port(server, lambda: FdPort(fd, name=url), stop)
    else:
        _serve_port(server, lambda: open_port(url, baudrate=args.baudrate), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
