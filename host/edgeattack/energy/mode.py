"""`--energy auto|measured|estimated|off` (CONVENTIONS): what a run uses for energy on a board."""
from __future__ import annotations

from ..errors import UsageError
from ..profiles import BoardProfile, get_profile
from .estimate import Estimate, profile_estimate
from .meter import MeterBase, open_meter

ENERGY_MODES = ("auto", "measured", "estimated", "off")


def resolve_energy_mode(profile, mode: str = "auto") -> MeterBase | Estimate | None:
    """The board's meter (not yet opened), its cited estimate, or None.

    auto: the meter when the profile names one, else the estimate where the profile has cited
    constants, else None. measured / estimated: that one, or a one-line error saying why not.
    """
    if mode not in ENERGY_MODES:
        raise UsageError(f"--energy must be one of {', '.join(ENERGY_MODES)}, got {mode!r}")
    if mode == "off":
        return None
    profile = profile if isinstance(profile, BoardProfile) else get_profile(profile)
    energy = profile.energy or {}
    meter = energy.get("meter")
    if mode in ("auto", "measured") and meter:
        return open_meter(meter, energy.get("options") or {})
    if mode == "measured":
        raise UsageError(f"--energy measured: board {profile.name} has no energy meter in its profile "
                         f"(add energy: {{meter: NAME, options: {{...}}}}, see docs/energy.md; or use "
                         f"--energy estimated or auto)")
    estimate = profile_estimate(profile)
    if mode == "estimated" and estimate is None:
        raise UsageError(f"--energy estimated: board {profile.name}'s profile has no cited energy "
                         f"constants (energy.estimate with active_power_w and source, see "
                         f"docs/energy.md); use --energy auto or off")
    return estimate
