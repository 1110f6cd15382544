"""The error-message texts of a firmware build (firmware_models/util/ea_msg.h, docs/firmware.md
"Error messages"): the firmware sends a message's fixed pieces as offsets into its ELF's `.ea_msg`
section, which is not loaded into flash; INFO reports the ELF's GNU build-id. At build time
`extract` reads the texts and the build-id from the ELF and `store` keeps them under the cache's
`messages/<build_id>.json`; `lookup(build_id)` finds them again for any later connection, so that
`edgeattack.link.coded.expand` shows the user the full text.
"""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

_KNOWN: dict[str, dict[int, str]] = {}  # build_id -> texts, of builds this process made or read
_DIRS: set[Path] = set()                # cache folders this process stored texts in


def _sections(elf: bytes) -> dict[str, tuple[int, int, int]]:
    """ELF32 little-endian section headers: name -> (address, file offset, size)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 1 or elf[5] != 1:
        raise ValueError("not a 32-bit little-endian ELF")
    shoff, = struct.unpack_from("<I", elf, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x2E)
    heads = [struct.unpack_from("<IIIIIIIIII", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = heads[shstrndx]
    names = elf[strtab[4]:strtab[4] + strtab[5]]
    out = {}
    for h in heads:
        name = names[h[0]:names.index(b"\0", h[0])].decode()
        out[name] = (h[3], h[4], h[5])
    return out


def extract(elf_path, nm: str = "arm-none-eabi-nm") -> tuple[str | None, dict[int, str]]:
    """(build_id hex or None, {offset: text}) of a linked firmware."""
    data = Path(elf_path).read_bytes()
    secs = _sections(data)
    texts: dict[int, str] = {}
    if ".ea_msg" in secs:
        _, off, size = secs[".ea_msg"]
        blob = data[off:off + size]
        start = 0
        while start < len(blob):
            end = blob.index(b"\0", start)
            texts[start] = blob[start:end].decode("utf-8")
            start = end + 1
    build_id = None
    symbols = subprocess.run([nm, str(elf_path)], capture_output=True, text=True, check=True,
                             timeout=60).stdout
    for line in symbols.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "ea_build_id" and ".text" in secs:
            addr, toff, _ = secs[".text"]
            at = toff + int(parts[0], 16) - addr
            namesz, descsz, kind = struct.unpack_from("<III", data, at)
            if (namesz, kind) == (4, 3) and data[at + 12:at + 16] == b"GNU\0":
                build_id = data[at + 16:at + 16 + descsz].hex()
    return build_id, texts


def store(cache_dir, build_id: str, texts: dict[int, str]) -> Path:
    """Keep a build's texts under cache_dir/messages/<build_id>.json (written whole, then renamed)."""
    folder = Path(cache_dir) / "messages"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{build_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"build_id": build_id, "texts": {str(k): v for k, v in texts.items()}}))
    tmp.replace(path)
    _KNOWN[build_id] = dict(texts)
    _DIRS.add(folder)
    return path


def remember(cache_dir) -> None:
    """Let lookup search cache_dir's texts too (a build taken from that cache)."""
    _DIRS.add(Path(cache_dir) / "messages")


def lookup(build_id: str) -> dict[int, str] | None:
    """The texts of firmware build `build_id`, from this process's builds or a cache folder (the
    default one and any this process stored in); None when this host never built it."""
    if build_id in _KNOWN:
        return _KNOWN[build_id]
    if not build_id or not all(c in "0123456789abcdef" for c in build_id):
        return None
    from .build import default_cache_dir

    for folder in [Path(default_cache_dir()) / "messages", *sorted(_DIRS)]:
        try:
            texts = json.loads((folder / f"{build_id}.json").read_text())["texts"]
        except (OSError, ValueError, KeyError):
            continue
        _KNOWN[build_id] = {int(k): v for k, v in texts.items()}
        return _KNOWN[build_id]
    return None
