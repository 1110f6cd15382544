"""Energy: meters that measure it and profile constants that estimate it (docs/energy.md).

Beside link/ in the layering: it knows no device. Sessions and studies call resolve_energy_mode()
for a board, then either run a meter over INFER windows (open/start/stop/windows, then
per_inference) or multiply device time by an Estimate.
"""
from .estimate import Estimate, power_from_reference, profile_estimate
from .meter import EnergyMeter, MeterBase, meter_class, meter_names, open_meter, register
from .mode import ENERGY_MODES, resolve_energy_mode
from .trace import MeterError, Trace, Window, per_inference

__all__ = ["ENERGY_MODES", "EnergyMeter", "Estimate", "MeterBase", "MeterError", "Trace", "Window",
           "meter_class", "meter_names", "open_meter", "per_inference", "power_from_reference",
           "profile_estimate", "register", "resolve_energy_mode"]
