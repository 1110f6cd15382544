#!/usr/bin/env python
"""Kernel sets compared on QEMU: instructions per MAC of a whole inference, footprint, and a cycle
estimate of the hot inner loops.

    python tools/bench_kernels.py                                  # qemu-m4 ref, dsp; qemu-m55 ref, dsp, mve
    python tools/bench_kernels.py --runs qemu-m55:ref,qemu-m55:dsp,qemu-m55:mve
    python tools/bench_kernels.py --models resnet8 --json kernels.json

For every zoo model (untrained, int8, full width, as tools/bench_fw_qemu.py builds them) and every
(board, kernel set) pair of --runs, the firmware is built with that set (build_firmware(kernels=...))
and one inference is counted under `-icount shift=0` (1 instruction = 1 ns of guest time): the whole
inference, every operator included, divided by the model's MACs. Footprint: text/data/bss of the
linked ELF (text includes the model array; "code" = text minus the model's bytes).

Cycle estimate (labelled an estimate: QEMU counts instructions, not cycles): the innermost loop with
the most multiply-accumulates per instruction in ea_mat_s8 (CONV_2D, FULLY_CONNECTED) and in the
depthwise kernel, and in the dsp set's own loops (mat_2cols: its CONV_2D matrix product; dw3x3_pixel: its
3x3 depthwise, one iteration = four channels' nine taps and their requantization), is found in the qemu-m4 ELF's disassembly, and each instruction of one iteration is
given its Cortex-M4 cycles from the Cortex-M4 Technical Reference Manual (ARM DDI 0439B, table 3-1):
ALU, SXTB16, MUL/MLA/SMLAD/SMLABB 1; a load 2, but neighbouring single loads pipeline so a run of n
loads takes n + 1; a taken branch 1 + P with P = 2 (the TRM gives 1-3 for the pipeline refill);
zero wait-state memory assumed. MACs per iteration: MLA, SMLABB, SMLATT 1, SMLAD 2.

On qemu-m55 the same search runs on the qemu-m55 ELF (disassembled as Armv8.1-M, so MVE decodes) and
the loop is costed by the Cortex-M55's beat model: the M55 executes MVE "dual-beat", two of a 128-bit
vector instruction's four 32-bit beats per cycle, so a vector instruction occupies its unit for 2
cycles; Armv8.1-M lets the next vector instruction start its first beats while the previous one
finishes its last when they use different units (a load/store and an arithmetic/MAC instruction), so
in an alternating pair one cycle overlaps. Two figures: no overlap (every vector instruction 2
cycles) and full overlap (1 cycle saved at each change between a VLDR/VSTR and an arithmetic
instruction). Scalar instructions 1 cycle, the low-overhead loop's LE 1 (its branch is predicted by
the loop cache), any other taken loop branch 1 + 2 as on the M4; zero wait-state TCM assumed. MACs:
VMLADAV(A).S8 16, VMUL.I32 4 (the depthwise product; its VADD is the accumulate). The scalar dsp loop
is costed the same way on the M55 (1 cycle per instruction: a lower bound for it, so the mve/dsp ratio
is not flattered).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ZOO = ["cnn-digits", "cnn-mnist", "resnet8", "dscnn", "mobilenet-tiny"]
RUNS = "qemu-m4:ref,qemu-m4:dsp,qemu-m55:ref,qemu-m55:dsp,qemu-m55:mve"
MAC_INSNS = {"mla": 1, "smlabb": 1, "smlatt": 1, "smlabt": 1, "smlatb": 1, "smlad": 2, "smladx": 2,
             "vmlava.s8": 16, "vmlav.s8": 16, "vmul.i32": 4}
# Functions whose hottest loop is reported; a name matches with or without GCC's clone suffixes
# (mat_2cols.isra.0). A set without the function (ref has no mat_2cols) reports nothing for it.
HOT_FUNCTIONS = ("ea_mat_s8", "ea_depthwise_conv_s8", "mat_2cols", "dw3x3_pixel")


def _named(funcs: dict, name: str) -> list:
    for k, v in funcs.items():
        if k == name or k.startswith(name + "."):
            return v
    return []
TAKEN_BRANCH_REFILL = 2


def _bench_fw_qemu():
    spec = importlib.util.spec_from_file_location("bench_fw_qemu", Path(__file__).with_name("bench_fw_qemu.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _functions(elf: Path, mve: bool = False) -> dict[str, list[tuple[int, str, str]]]:
    """Disassembly per function: [(address, mnemonic, operands)]; vector mnemonics keep their data type
    (vmlava.s8), scalar ones lose their width suffix (ldr.w -> ldr)."""
    arch = ["-m", "armv8.1-m.main"] if mve else []  # objdump decodes MVE only when told the architecture
    out = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", *arch, str(elf)], capture_output=True,
                         text=True, check=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if m and cur is not None:
            mn = m.group(2) if _is_vector(m.group(2)) else m.group(2).split(".")[0]
            cur.append((int(m.group(1), 16), mn, m.group(3)))
    return funcs


def _is_vector(mn: str) -> bool:
    """An MVE instruction (beats); VMRS/VMSR/VMOV to core registers and VPST are not counted as such."""
    return mn.startswith("v") and not mn.startswith(("vmrs", "vmsr", "vpst", "vpt"))


def _is_branch(mn: str) -> bool:
    return bool(re.fullmatch(r"(b(eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?|le|letp)", mn))


def m55_cycles(body) -> tuple[int, int]:
    """Estimated Cortex-M55 cycles of one loop iteration: (no overlap, full overlap); see the module doc."""
    plain, overlapped, prev = 0, 0, None
    for _, mn, _ in body:
        if _is_vector(mn):
            unit = "mem" if mn.startswith(("vldr", "vstr")) else "alu"
            plain += 2
            overlapped += 1 if prev is not None and prev != unit else 2
            prev = unit
            continue
        cost = 1 if mn in ("le", "letp") or not _is_branch(mn) else 1 + TAKEN_BRANCH_REFILL
        plain += cost
        overlapped += cost
        prev = None
    return plain, overlapped


def _loops(insns) -> list[tuple[int, int]]:
    """(start, end) address of every backward-branch loop, in branch order."""
    found = []
    for addr, mn, ops in insns:
        m = re.search(r"([0-9a-f]+) <", ops) if _is_branch(mn) else None
        if m and int(m.group(1), 16) <= addr:
            found.append((int(m.group(1), 16), addr))
    return found


def hot_loop(insns, core: str = "m4", pick: str = "density") -> dict | None:
    """A loop with at least 2 MACs and its estimated cycles per iteration (Cortex-M4 TRM, or the
    Cortex-M55 beat model for core "m55"). pick="density": the backward-branch loop with the most MACs
    per instruction. pick="macs": among innermost loops (no other loop inside), the one with the most
    MACs per iteration, fewer instructions breaking ties: the loop a one-layer ELF's layer actually
    runs, where the densest can be a generic path's small loop (the dsp depthwise's 4-MAC loop
    beside its unrolled 3x3 one)."""
    loops = _loops(insns)
    if pick == "macs":
        loops = [(a, b) for a, b in loops if not any(a <= a2 and b2 < b for a2, b2 in loops if (a2, b2) != (a, b))]
    best = None
    for start, end in loops:
        body = [x for x in insns if start <= x[0] <= end]
        macs = sum(MAC_INSNS.get(x[1], 0) for x in body)
        if macs < 2:
            continue
        key = macs / len(body) if pick == "density" else (macs, -len(body))
        if best is None or key > best[0]:
            best = (key, body, macs)
    if best is None:
        return None
    _, body, macs = best
    if core == "m55":
        plain, overlapped = m55_cycles(body)
        return {"instructions": len(body), "macs": macs, "cycles": plain, "cycles_overlapped": overlapped,
                "instructions_per_mac": round(len(body) / macs, 3), "cycles_per_mac": round(plain / macs, 3),
                "cycles_per_mac_overlapped": round(overlapped / macs, 3),
                "mnemonics": " ".join(x[1] for x in body)}
    cycles, run = 0, 0
    for _, mn, _ in body:
        if mn.startswith("ldr") and mn not in ("ldrd",) and not mn.startswith("ldm"):
            run += 1
            continue
        if run:
            cycles += run + 1
            run = 0
        if mn == "ldrd":
            cycles += 3
        elif _is_branch(mn):
            cycles += 1 + TAKEN_BRANCH_REFILL  # the loop's closing branch, taken
        else:
            cycles += 1
    if run:
        cycles += run + 1
    return {"instructions": len(body), "macs": macs, "cycles": cycles,
            "instructions_per_mac": round(len(body) / macs, 2), "cycles_per_mac": round(cycles / macs, 2),
            "mnemonics": " ".join(x[1] for x in body)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=RUNS, help=f"comma-separated board:kernels pairs (default {RUNS})")
    ap.add_argument("--models", default=",".join(ZOO), help="comma-separated zoo models")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    fw = _bench_fw_qemu()
    runs = [tuple(r.split(":")) for r in args.runs.split(",")]
    rows, loops = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_kernels_") as tmp:
        for name in args.models.split(","):
            path = fw.int8_zoo_model(name, args.width, Path(tmp))
            for board, kernels in runs:
                row = fw.measure(board, path, 1, kernels)
                row.update(board=board, kernels=kernels, model=name)
                rows.append(row)
                if "error" in row:
                    print(f"{board:9s} {kernels:4s} {name:15s} error: {row['error']}", flush=True)
                    continue
                code = row["text"] - row["model_bytes"]
                print(f"{board:9s} {kernels:4s} {name:15s} MACs {row['macs']:>11,d}  instructions "
                      f"{row['instructions']:>12,d}  instr/MAC {row['instructions_per_mac']:6.2f}  text "
                      f"{row['text']:>8,d} (code {code:,d})  data {row['data']:>5,d}  bss {row['bss']:>7,d}",
                      flush=True)
                found = loops.setdefault((board, kernels), {})
                if any(found.get(f) is None for f in HOT_FUNCTIONS):  # a model without depthwise lacks its kernel
                    from edgeattack.firmware.build import build_firmware

                    m55 = board == "qemu-m55"
                    funcs = _functions(build_firmware(path, board, kernels=kernels).elf, mve=m55)
                    for f in HOT_FUNCTIONS:
                        if found.get(f) is None:
                            found[f] = hot_loop(_named(funcs, f), "m55" if m55 else "m4")
    print("\ninstructions per MAC, whole inference (ratio = first run / each run):")
    first = runs[0]
    for name in args.models.split(","):
        by = {(r["board"], r["kernels"]): r for r in rows if r["model"] == name and "error" not in r}
        base = by.get(first, {}).get("instructions")
        cells = []
        for run in runs:
            r = by.get(run)
            if r:
                ratio = f" (x{base / r['instructions']:.2f})" if base else ""
                cells.append(f"{run[0]}:{run[1]} {r['instructions_per_mac']:.2f}{ratio}")
        print(f"  {name:15s} " + "  ".join(cells))
    print("\nhot inner loops (estimates: qemu-m4 from the Cortex-M4 TRM, qemu-m55 from the M55 beat model, "
          "zero wait states):")
    for (board, kernels), fs in loops.items():
        for f, lp in fs.items():
            if not lp:
                continue
            est = f"estimated {lp['cycles_per_mac']:.2f} cycles/MAC"
            if "cycles_per_mac_overlapped" in lp:
                est = (f"estimated {lp['cycles_per_mac_overlapped']:.3f}-{lp['cycles_per_mac']:.3f} cycles/MAC "
                       f"(overlapped-plain)")
            print(f"  {board:9s} {kernels:4s} {f:22s} {lp['instructions']:3d} instructions, {lp['macs']:3d} MACs: "
                  f"{lp['instructions_per_mac']:.3f} instr/MAC, {est}\n      {lp['mnemonics']}")
    if args.json:
        args.json.write_text(json.dumps({"models": rows, "hot_loops": {f"{b}:{k}": v for (b, k), v in loops.items()}},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
