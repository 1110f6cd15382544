"""TI INA219 on I2C (smbus2, register level; TI datasheet SBOS448).

Registers: 0x00 configuration (0x399F: 32 V bus range, +-320 mV shunt range, 12-bit, shunt and
bus continuous), 0x01 shunt voltage (signed, LSB 10 uV), 0x02 bus voltage (bits 15-3, LSB 4 mV;
bit 1 CNVR conversion ready, bit 0 OVF math overflow), 0x03 power, 0x04 current, 0x05
calibration. The power and current registers depend on the calibration value; this driver
computes I = V_shunt / shunt_ohms and P = V_bus x I from the two voltage registers instead, so
no calibration register is needed. Options: bus (1 on a Pi), address (0x40), shunt_ohms (0.1 on
the common breakout boards), config.
"""
from __future__ import annotations

from ..meter import register
from ..trace import MeterError
from ._ina import InaMeter, nan_if, signed16


@register("ina219")
class INA219(InaMeter):
    OPTIONS = {**InaMeter.OPTIONS, "shunt_ohms": 0.1}
    CONFIG_DEFAULT = 0x399F

    def _check_chip(self) -> None:
        if not float(self.options["shunt_ohms"]) > 0:
            raise MeterError(f"energy meter ina219: option shunt_ohms must be positive, got "
                             f"{self.options['shunt_ohms']!r}")
        self.read(0x00)  # the INA219 has no ID register: an answer at the address is all we get

    def _power_w(self) -> float:
        shunt_v = signed16(self.read(0x01)) * 10e-6
        bus = self.read(0x02)
        bus_v = (bus >> 3) * 4e-3
        return nan_if(bool(bus & 0x1), bus_v * shunt_v / float(self.options["shunt_ohms"]))
