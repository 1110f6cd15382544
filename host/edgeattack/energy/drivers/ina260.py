"""TI INA260 on I2C (smbus2, register level; TI datasheet SBOS656), with its own 2 mOhm shunt.

Registers: 0x00 configuration (0x6127: averaging 1, 1.1 ms conversions, shunt and bus
continuous), 0x01 current (signed, LSB 1.25 mA), 0x02 bus voltage (LSB 1.25 mV), 0x03 power (LSB
10 mW, too coarse for a microcontroller: P = V_bus x I is computed instead), 0x06 mask/enable
(bit 2 OVF math overflow), 0xFE manufacturer ID (0x5449, "TI"), 0xFF die ID (0x2270).
Options: bus (1 on a Pi), address (0x40), config.
"""
from __future__ import annotations

from ..meter import register
from ..trace import MeterError
from ._ina import InaMeter, nan_if, signed16

MANUFACTURER_ID = 0x5449


@register("ina260")
class INA260(InaMeter):
    CONFIG_DEFAULT = 0x6127

    def _check_chip(self) -> None:
        found = self.read(0xFE)
        if found != MANUFACTURER_ID:
            raise MeterError(f"energy meter ina260: the chip at {self.options['address']:#04x} "
                             f"reports manufacturer ID {found:#06x}, not TI's {MANUFACTURER_ID:#06x} "
                             f"(wrong address, or an INA219: use meter ina219)")

    def _power_w(self) -> float:
        amps = signed16(self.read(0x01)) * 1.25e-3
        volts = self.read(0x02) * 1.25e-3
        overflow = bool(self.read(0x06) & 0x4)
        return nan_if(overflow, volts * amps)
