"""A TI INA219 current/power monitor over I2C (smbus2), across a shunt in the board's supply. Read
without calibration: the shunt voltage (10 uV a bit) over the profile's shunt resistance gives the
current, the bus voltage (4 mV a bit, at the load side) times it the power. At the chip's reset
configuration (+-320 mV across the shunt) a 0.1 Ohm shunt reads up to 3.2 A."""

from __future__ import annotations

from hil.boards.meters import Reading
from hil.boards.meters.i2c import Bus, open_bus, read_register
from hil.boards.profile import Board, Ina219Spec
from hil.boards.transport import Transport
from hil.errors import MeterError

CONFIG, SHUNT, BUS = 0x00, 0x01, 0x02
SHUNT_VOLTS_PER_BIT, BUS_VOLTS_PER_BIT = 10e-6, 4e-3
OVERFLOW = 0x1  # of the bus voltage register: the current or power is out of range


class Ina219:
    modelled = False
    period = 0.01  # s; a 12-bit conversion takes 0.53 ms

    def __init__(self, bus: Bus, address: int, shunt_ohms: float, where: str) -> None:
        self.bus, self.address, self.shunt_ohms = bus, address, shunt_ohms
        self.name = f"ina219 on {where} at {address:#04x}, {shunt_ohms:g} Ohm shunt"
        read_register(bus, address, CONFIG, False, self.name)  # does it answer at all

    def read(self) -> Reading:
        shunt = read_register(self.bus, self.address, SHUNT, True, self.name) * SHUNT_VOLTS_PER_BIT
        bus = read_register(self.bus, self.address, BUS, False, self.name)
        if bus & OVERFLOW:
            raise MeterError(f"{self.name}: overflow: the current is beyond the shunt's range; use a smaller shunt")
        volts, amps = (bus >> 3) * BUS_VOLTS_PER_BIT, shunt / self.shunt_ohms
        return Reading(volts * amps, volts, amps)

    def close(self) -> None:
        self.bus.close()


def open_meter(spec: Ina219Spec, board: Board, transport: Transport) -> Ina219:
    bus = open_bus(spec.bus)
    try:
        return Ina219(bus, spec.address, spec.shunt_ohms, f"/dev/i2c-{spec.bus}")
    except MeterError:
        bus.close()
        raise
