"""Energy estimated from a board profile's cited constants, for boards without a meter.

A profile may carry `energy: {estimate: {active_power_w, idle_power_w, source, reference_energy_j,
reference_time_s}}` (the flat `{active_power_w, idle_power_w, source}` of older profiles is the same
thing). Energy per inference = active power x device time, labelled "estimated" everywhere it
appears. Only profiles that cite a source get an estimate: an uncited number is no estimate.

nucleo-l4r5zi's constant (and qemu-m4's, which models that chip) is derived from MLPerf Tiny v0.5's
reference submission on that board (image classification, ResNet-8, plain TFLM, 120 MHz):
29,207.010 uJ per inference and 10 inferences in 7.042 s, i.e. 704.2 ms each (mlcommons/
tiny_results_v0.5, closed/reference/results/Nucleo-L4R5ZI/ic/energy/results.txt and
.../ic/performance/results.txt): 0.029207010 J / 0.7042 s = 41.48 mW.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..profiles import BoardProfile, get_profile

# MLPerf Tiny v0.5, closed/reference/results/Nucleo-L4R5ZI/ic (see the module docstring)
MLPERF_L4R5ZI_IC_ENERGY_J = 29_207.010e-6
MLPERF_L4R5ZI_IC_TIME_S = 0.7042


def power_from_reference(energy_j: float, time_s: float) -> float:
    """Average active power (W) from a published energy and time per inference."""
    if not (energy_j > 0 and time_s > 0):
        raise ValueError("energy and time must be positive")
    return energy_j / time_s


@dataclass(frozen=True)
class Estimate:
    active_power_w: float
    source: str
    idle_power_w: float | None = None
    reference_energy_j: float | None = None
    reference_time_s: float | None = None
    energy_source = "estimated"

    def energy_j(self, device_time_s: float) -> float:
        """Estimated energy of `device_time_s` seconds of inference."""
        return device_time_s * self.active_power_w


def profile_estimate(profile) -> Estimate | None:
    """The profile's cited estimate, or None when it has no cited constants."""
    profile = profile if isinstance(profile, BoardProfile) else get_profile(profile)
    energy = profile.energy or {}
    consts = energy.get("estimate", energy if "active_power_w" in energy else None)
    if not consts or not consts.get("active_power_w") or not consts.get("source"):
        return None
    return Estimate(active_power_w=float(consts["active_power_w"]), source=str(consts["source"]),
                    idle_power_w=consts.get("idle_power_w"),
                    reference_energy_j=consts.get("reference_energy_j"),
                    reference_time_s=consts.get("reference_time_s"))
