"""Write the libFuzzer seed corpus for the firmware's protocol engine (firmware_models/fuzz/fuzz_frame.c)
from the shared protocol test vectors (protocol_v1.json, and protocol_v2.json's slot and patch
messages, named v2_*): every valid frame, every stream, and each session's requests as one byte stream. Usage: python tools/gen_frame_corpus.py   (rewrites firmware_models/fuzz/corpus_frame/)
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgeattack.link.frame import encode_wire

ROOT = Path(__file__).resolve().parents[1]
VECTORS = {"": ROOT / "tests" / "vectors" / "protocol_v1.json",
           "v2_": ROOT / "tests" / "vectors" / "protocol_v2.json"}
OUT = ROOT / "firmware_models" / "fuzz" / "corpus_frame"


def main() -> None:
    seeds: dict[str, bytes] = {}
    for prefix, path in VECTORS.items():
        v = json.loads(path.read_text())
        for vec in v["valid"] + v.get("invalid", []) + v.get("streams", []):
            hexes = vec.get("wire_hex") or vec.get("hex")
            if hexes:
                seeds[prefix + vec["name"]] = bytes.fromhex(hexes)
        for s in v["sessions"]:
            stream = b"".join(encode_wire(st["send"]["version"], st["send"]["type"], st["send"]["seq"],
                                          bytes.fromhex(st["send"]["payload_hex"]))
                              for st in s["steps"] if "send" in st)
            seeds[f"{prefix}session_{s['name']}"] = stream
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    for name, data in sorted(seeds.items()):
        (OUT / f"{name}.bin").write_bytes(data)
    print(f"wrote {len(seeds)} seeds ({sum(map(len, seeds.values()))} bytes) to {OUT}")


if __name__ == "__main__":
    main()
