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

MARK = "\x1f"
_TOKEN = re.compile("\x1f([0-9a-f]{4})")

# build_id -> {offset: text}, or None when this host has no texts for that build
TextLookup = Callable[[str], "Mapping[int, str] | None"]


def is_coded(text: str) -> bool:
    return MARK in text


def expand(text: str, texts: Mapping[int, str] | None, build_id: str | None = None) -> str:
    """`text` with every token replaced by its text. Tokens this host has no text for (another
    build's firmware, or no build_id) stay as `[#offset]`, and one note at the end names the build,
    so the message stays one readable line."""
    if MARK not in text:
        return text
    missing = []

    def one(match: re.Match) -> str:
        offset = int(match.group(1), 16)
        if texts is not None and offset in texts:
            return texts[offset]
        missing.append(offset)
        return f"[#{offset:04x}]"

    out = _TOKEN.sub(one, text)
    if missing:
        out += (f" (message texts of firmware build {build_id or '(unknown)'} are not on this host: "
                f"build that firmware here to read them)")
    return out
