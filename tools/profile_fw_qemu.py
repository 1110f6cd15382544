#!/usr/bin/env python
"""Where one inference's instructions go, per function, on a QEMU board, with a cycle estimate.

    python tools/profile_fw_qemu.py mobilenet-tiny                       # zoo model, qemu-m4, dsp set
    python tools/profile_fw_qemu.py model.tflite --kernels ref --top 30 --json prof.json

The firmware (the board's default build for the model, with --kernels) runs one inference of a random
int8 input under QEMU with `-singlestep -d exec,nochain`: QEMU logs every executed instruction's address.
The inference is the stretch between the two reads of the tick counter around it (the same window the
firmware's own tick count covers, so the total matches INFER's instructions to within the few
instructions of the tick reads). Each address is charged to the ELF symbol holding it (LTO may merge or
rename functions: a kernel can show up as `main.c.<hash>` or `<name>.isra.0`).

Cycle estimate (an estimate, not a measurement: QEMU counts instructions) of every executed instruction
from the Cortex-M4 TRM's timings (ARM DDI 0439B, table 3-1), zero wait states: most instructions 1;
single loads and stores 2, but a run of n neighbouring ones n + 1; LDRD/STRD 3; LDM/STM/PUSH/POP 1 + the
registers (+ 2 when POP loads the PC); a branch that was taken (the next executed address is not the
following instruction) 1 + 2 (the TRM's pipeline refill is 1-3), BL/BLX 3; SDIV/UDIV 12 (the TRM's worst
case of 2-12, so the estimate does not flatter a division-heavy path); multiplies, MACs, SMLAL, SMMLAR
and the DSP instructions 1. The same model as tools/bench_kernels.py's hot-loop estimate, applied to
the whole inference.

Takes about 30 s for a zoo model (the trace of a 1M-instruction inference is about 100 MB, deleted
afterwards). qemu-m4 only: the M55 beat model is not applied here.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

ZOO = ["cnn-digits", "cnn-mnist", "resnet8", "dscnn", "mobilenet-tiny"]
TICK_FUNCTION = "ea_board_ticks_now"
BRANCH_REFILL = 2
DIVIDE_CYCLES = 12
_SINGLE_MEM = re.compile(r"(ldr|str)(b|h|sb|sh|ex|exb|exh|t|bt|ht|sbt|sht)?$")


def symbols(elf: Path) -> tuple[list[int], list[tuple[int, int, str]]]:
    """Function symbols sorted by address: (starts, [(start, size, name)])."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.append((int(parts[0], 16) & ~1, int(parts[1], 16), parts[3]))
    syms.sort()
    return [s[0] for s in syms], syms


def instructions(elf: Path) -> dict[int, tuple[str, str, int]]:
    """address -> (mnemonic without width suffix or condition of IT blocks, operands, size in bytes)."""
    out = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    insns = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{4}\s?){1,2})\s+(\S+)\s*(.*)$", line)
        if m:
            size = len(m.group(2).replace(" ", "")) // 2
            insns[int(m.group(1), 16)] = (m.group(3).split(".")[0], m.group(4), size)
    return insns


def _cycles(mn: str, ops: str, taken: bool, prev_single_mem: bool) -> tuple[int, bool]:
    """Estimated cycles of one executed instruction and whether it is a single load/store (see the doc)."""
    base = re.sub(r"(eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)$", "", mn) if mn not in ("bl", "bls") else mn
    if _SINGLE_MEM.match(base) or _SINGLE_MEM.match(mn):
        cost = 1 if prev_single_mem else 2
        if "pc" in ops.split(",")[0] and base.startswith("ldr"):
            cost += BRANCH_REFILL
        return cost, True
    if base in ("ldrd", "strd"):
        return 3, False
    if base in ("ldm", "ldmia", "ldmdb", "stm", "stmia", "stmdb", "push", "pop"):
        regs = re.search(r"\{([^}]*)\}", ops)
        n = 0
        for part in (regs.group(1).split(",") if regs else []):
            part = part.strip()
            if "-" in part:
                a, b = (int(x.strip()[1:]) for x in part.split("-"))
                n += b - a + 1
            elif part:
                n += 1
        return 1 + n + (BRANCH_REFILL if "pc" in ops and base in ("pop", "ldm", "ldmia") else 0), False
    if base in ("sdiv", "udiv"):
        return DIVIDE_CYCLES, False
    if base in ("bl", "blx"):
        return 1 + BRANCH_REFILL, False
    if base in ("b", "bx", "cbz", "cbnz", "tbb", "tbh"):
        return (1 + BRANCH_REFILL) if taken else 1, False
    return 1, False


def profile(board: str, model: Path, kernels: str, workdir: Path) -> dict:
    from edgeattack.device.boards import qemu as qemu_board
    from edgeattack.firmware.build import build_firmware
    from edgeattack.link.client import Client
    from edgeattack.link.transport import open_port

    trace = workdir / "trace.log"
    build = build_firmware(model, board, kernels=kernels)
    plain = qemu_board.qemu_command

    def traced(*a, **k):
        return plain(*a, **k) + ["-singlestep", "-d", "exec,nochain", "-D", str(trace)]

    qemu_board.qemu_command = traced
    try:
        with qemu_board.start_qemu_board(board, model, build=build) as b:
            shape = b.info["input"]["shape"][1:]
            x = np.random.default_rng(1).integers(-128, 128, size=(1, *shape), dtype=np.int8)
            with Client(lambda: open_port(b.url), timeout=120.0, total_timeout=900.0) as client:
                client.connect()
                start = trace.stat().st_size
                ticks = [r.ticks for r in client.infer_many(list(x))][0]
                end = trace.stat().st_size
            tick_hz = b.info["tick_hz"]
    finally:
        qemu_board.qemu_command = plain
    with open(trace, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    trace.unlink()
    pcs = [int(m.group(1), 16) for m in re.finditer(rb"\[[0-9a-f]+/([0-9a-f]+)/", data)]
    starts, syms = symbols(build.elf)
    insns = instructions(build.elf)

    def owner(pc):
        i = bisect.bisect_right(starts, pc) - 1
        return syms[i][2] if i >= 0 and pc < syms[i][0] + syms[i][1] else "?"

    names = [owner(pc) for pc in pcs]
    tick_reads = [i for i, n in enumerate(names) if n == TICK_FUNCTION]
    if len(tick_reads) < 2:
        raise SystemExit(f"error: no tick reads ({TICK_FUNCTION}) in the trace: is this a protocol firmware?")
    # from the return of the first tick read to the entry of the last one
    first = tick_reads[0]
    while first < len(names) and names[first] == TICK_FUNCTION:
        first += 1
    last = tick_reads[-1]
    while last > 0 and names[last - 1] == TICK_FUNCTION:
        last -= 1
    per = collections.defaultdict(lambda: [0, 0])
    prev_mem = False
    for i in range(first, last):
        pc = pcs[i]
        mn, ops, size = insns.get(pc, ("?", "", 2))
        taken = pcs[i + 1] != pc + size
        c, prev_mem = _cycles(mn, ops, taken, prev_mem)
        row = per[names[i]]
        row[0] += 1
        row[1] += c
    total_i = sum(v[0] for v in per.values())
    total_c = sum(v[1] for v in per.values())
    return {"board": board, "model": model.stem, "kernels": build.kernels,
            "firmware_instructions": int(round(ticks * 1e9 / tick_hz)), "traced_instructions": total_i,
            "estimated_cycles": total_c,
            "functions": sorted(({"function": k, "instructions": v[0], "estimated_cycles": v[1]}
                                 for k, v in per.items()), key=lambda r: -r["instructions"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help=f"a .tflite file or a zoo model ({', '.join(ZOO)}; untrained, full width)")
    ap.add_argument("--board", default="qemu-m4", choices=["qemu-m4"])
    ap.add_argument("--kernels", default="dsp", help="kernel set: auto, ref, dsp (default dsp)")
    ap.add_argument("--top", type=int, default=20, help="functions to print (default 20)")
    ap.add_argument("--json", type=Path, help="write the full profile as JSON here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="profile_fw_") as tmp:
        if args.model in ZOO:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from bench_fw_qemu import int8_zoo_model

            path = int8_zoo_model(args.model, 1.0, Path(tmp))
        else:
            path = Path(args.model)
            if not path.is_file():
                print(f"error: {args.model}: no such file and not a zoo model ({', '.join(ZOO)})", file=sys.stderr)
                return 2
        res = profile(args.board, path, args.kernels, Path(tmp))
        from edgeattack.tflite.analysis import layer_macs

        res["macs"] = sum(r["macs"] for r in layer_macs(path.read_bytes()))
    n, c, macs = res["traced_instructions"], res["estimated_cycles"], res["macs"]
    print(f"{res['model']} on {res['board']} ({res['kernels']}): {n:,d} instructions traced (the firmware's count "
          f"{res['firmware_instructions']:,d}), estimated {c:,d} Cortex-M4 cycles; per MAC ({macs:,d}): "
          f"{n / macs:.2f} instructions, {c / macs:.2f} estimated cycles" if macs else "")
    for r in res["functions"][: args.top]:
        print(f"  {r['instructions']:>10,d} {100 * r['instructions'] / res['traced_instructions']:5.1f}%  "
              f"~{r['estimated_cycles']:>10,d} cycles  {r['function']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
