"""Error messages whose texts stay on the host (firmware_models/util/ea_msg.h).

The C firmware keeps its error-message texts out of flash: where a message has a fixed piece of text
it sends EA_MSG_MARK (0x1F) and the piece's offset in the firmware ELF's `.ea_msg` section as four
lower-case hex digits; numbers and names stay plain text. INFO reports the build's `build_id`, and
the host (edgeattack.firmware.messages) reads the texts from the ELF it built. `expand` puts the
texts back, so the user sees the same one-line message a firmware with texts in flash would send.
This module knows no board and no firmware build: the caller hands it the texts.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

MARK = "\x1f"  # a piece: MARK and its offset in .ea_msg as 4 lower-case hex digits
ARG = "\x1e"   # ends each number that follows a piece holding "{}" places (ea_sb_fmt)
_TOKEN = re.compile("\x1f([0-9a-f]{4})")
_ARG = re.compile("(-?[0-9]+)\x1e")

# build_id -> {offset: text}, or None when this host has no texts for that build
TextLookup = Callable[[str], "Mapping[int, str] | None"]


def is_coded(text: str) -> bool:
    return MARK in text


def expand(text: str, texts: Mapping[int, str] | None, build_id: str | None = None) -> str:
    """`text` with every piece written out; a piece with "{}" places takes the numbers after it.
    Pieces this host has no text for (another build's firmware, or no build_id) stay as
    `[#offset]` (with their numbers, `[#offset 3 5]`), and one note at the end names the build, so
    the message stays one readable line."""
    if MARK not in text:
        return text
    out, pos, missing = [], 0, False
    while True:
        at = text.find(MARK, pos)
        if at < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:at])
        token = _TOKEN.match(text, at)
        if token is None:  # a stray mark: show it as the replacement character
            out.append("\ufffd")
            pos = at + 1
            continue
        pos = token.end()
        offset = int(token.group(1), 16)
        piece = texts.get(offset) if texts is not None else None
        if piece is None:
            missing = True
            numbers = []
            while (arg := _ARG.match(text, pos)) is not None:
                numbers.append(arg.group(1))
                pos = arg.end()
            out.append(f"[#{offset:04x}{''.join(' ' + n for n in numbers)}]")
            continue
        parts = piece.split("{}")
        out.append(parts[0])
        for part in parts[1:]:
            arg = _ARG.match(text, pos)
            if arg is not None:
                out.append(arg.group(1))
                pos = arg.end()
            out.append(part)
    if missing:
        out.append(f" (message texts of firmware build {build_id or '(unknown)'} are not on this host: "
                   f"build that firmware here to read them)")
    return "".join(out)
