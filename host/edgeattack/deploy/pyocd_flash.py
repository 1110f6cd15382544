"""Programming a microcontroller with pyOCD's Python API, each missing piece one clear line.

pyOCD is optional (`pip install 'edgeattack[mcu]'`). Before anything is built, `check_target` asks
pyOCD itself whether it knows the target, as its Board does when a session opens: built in (nrf52840),
or from an installed CMSIS device pack (stm32l4r5zitx needs ST's STM32L4xx pack, which `pyocd pack
install` downloads). For a board whose probe is a SEGGER J-Link (profile `deploy.probe: jlink`: the
nRF52840 DK's on-board probe), pyOCD reaches it only through SEGGER's own J-Link library, which no
package registry carries: pyOCD's J-Link driver quietly lists no probe without it, so
`check_jlink_library` names it instead. Then a probe must be connected.
"""
from __future__ import annotations

from ..errors import EdgeAttackError, UsageError

# targets of the built-in profiles whose support pyOCD takes from a pack (not built in)
NEEDS_PACK = ("stm32l4r5zitx",)
PROBES = ("jlink", "stlink", "cmsis-dap")  # profile deploy.probe values (absent: any probe pyOCD finds)
JLINK_HINT = ("SEGGER's J-Link library (libjlinkarm), which pyOCD needs for a J-Link probe, is not "
              "installed: install the \"J-Link Software and Documentation Pack\" from "
              "https://www.segger.com/downloads/jlink/ (it is in no package registry)")


def require_pyocd(board: str):
    """The pyocd module, or EdgeAttackError naming the install command."""
    try:
        import pyocd
    except ImportError:
        raise EdgeAttackError(f"board {board} is programmed with pyOCD, which is not installed: "
                              f"pip install 'edgeattack[mcu]' (or pip install pyocd)") from None
    return pyocd


def pack_install_command(target: str) -> str:
    return f"pyocd pack install {target}"


def target_source(target: str) -> str | None:
    """Where pyOCD's support for `target` comes from: "builtin", "pack" (an installed CMSIS pack), or
    None when pyOCD has none. Uses pyOCD's own tables and its pack manager's installed packs."""
    from pyocd.core.session import Session
    from pyocd.target import TARGET, normalise_target_type_name
    from pyocd.target.pack import pack_target

    name = normalise_target_type_name(target)
    if name in TARGET:
        return "builtin"
    session = Session(None, target_override=name)  # no probe: only the options (e.g. --pack) matter
    return "pack" if pack_target.is_pack_target_available(name, session) else None


def check_target(board: str, target: str) -> str:
    """The target's source (target_source), or EdgeAttackError with the pack install command."""
    source = target_source(target)
    if source is None:
        raise EdgeAttackError(
            f"board {board}: pyOCD has no support for target {target} installed (it comes in the chip "
            f"vendor's CMSIS device pack): run `{pack_install_command(target)}` once (it downloads the "
            f"pack), then flash again")
    return source


def jlink_library_found() -> bool:
    """Whether pyOCD's J-Link driver can load SEGGER's library (its own lookup, through pylink)."""
    from pyocd.probe.jlink_probe import JLinkProbe

    return JLinkProbe._get_jlink() is not None


def check_probe_kind(board: str, probe: str | None) -> None:
    if probe is not None and probe not in PROBES:
        raise UsageError(f"board {board}: deploy.probe {probe!r}: choose one of {', '.join(PROBES)} "
                         f"(or leave it out for any probe pyOCD finds)")


def check_jlink_library(board: str) -> None:
    if not jlink_library_found():
        raise EdgeAttackError(f"board {board}: {JLINK_HINT}")


def _kind_of(probe) -> str:
    name = type(probe).__name__.lower()
    return "jlink" if "jlink" in name else "stlink" if "stlink" in name else "cmsis-dap"


def find_probe(board: str, probe_kind: str | None):
    """The first connected probe of the wanted kind (pyOCD's enumeration, no waiting), or
    EdgeAttackError saying none is connected."""
    from pyocd.core.helpers import ConnectHelper

    probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    wanted = [p for p in probes if probe_kind is None or _kind_of(p) == probe_kind]
    if not wanted:
        kind = {"jlink": "J-Link", "stlink": "ST-LINK", "cmsis-dap": "CMSIS-DAP"}.get(probe_kind or "", "debug")
        seen = f" (pyOCD sees: {', '.join(p.description for p in probes)})" if probes else ""
        raise EdgeAttackError(f"board {board}: no {kind} probe connected{seen}: plug in the board's "
                              f"USB debug port and check `pyocd list`")
    return wanted[0]


def program(elf, target: str, unique_id: str) -> None:
    """Program the ELF's loadable sections through the probe and reset the chip to run it."""
    from pyocd.core.helpers import ConnectHelper
    from pyocd.flash.file_programmer import FileProgrammer

    with ConnectHelper.session_with_chosen_probe(unique_id=unique_id, target_override=target,
                                                 blocking=False) as session:
        if session is None:
            raise EdgeAttackError(f"the probe {unique_id} disappeared before programming")
        FileProgrammer(session).program(str(elf))
        session.target.reset()
