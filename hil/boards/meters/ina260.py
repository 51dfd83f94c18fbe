"""A TI INA260 current/power monitor over I2C (smbus2), its 2 mOhm shunt built in: current 1.25 mA
a bit, bus voltage 1.25 mV a bit, power 10 mW a bit, as the chip computes them. It is told from
other devices by its manufacturer id (TI, 0x5449) and die id (0x227)."""

from __future__ import annotations

from hil.boards.meters import Reading
from hil.boards.meters.i2c import Bus, open_bus, read_register
from hil.boards.profile import Board, Ina260Spec
from hil.boards.transport import Transport
from hil.errors import MeterError

CURRENT, BUS, POWER, MANUFACTURER, DIE = 0x01, 0x02, 0x03, 0xFE, 0xFF
TI, INA260_DIE = 0x5449, 0x227
AMPS_PER_BIT, VOLTS_PER_BIT, WATTS_PER_BIT = 1.25e-3, 1.25e-3, 10e-3


class Ina260:
    modelled = False
    period = 0.01  # s; a conversion takes 1.1 ms at the reset configuration

    def __init__(self, bus: Bus, address: int, where: str) -> None:
        self.bus, self.address = bus, address
        self.name = f"ina260 on {where} at {address:#04x}"
        maker = read_register(bus, address, MANUFACTURER, False, self.name)
        die = read_register(bus, address, DIE, False, self.name)
        if maker != TI or die >> 4 != INA260_DIE:
            raise MeterError(f"{self.name}: the device there is not an INA260 (manufacturer id {maker:#06x}, "
                             f"die id {die:#06x}): check the address")

    def read(self) -> Reading:
        amps = read_register(self.bus, self.address, CURRENT, True, self.name) * AMPS_PER_BIT
        volts = read_register(self.bus, self.address, BUS, False, self.name) * VOLTS_PER_BIT
        watts = read_register(self.bus, self.address, POWER, False, self.name) * WATTS_PER_BIT
        return Reading(watts, volts, amps)

    def close(self) -> None:
        self.bus.close()


def open_meter(spec: Ina260Spec, board: Board, transport: Transport) -> Ina260:
    bus = open_bus(spec.bus)
    try:
        return Ina260(bus, spec.address, f"/dev/i2c-{spec.bus}")
    except MeterError:
        bus.close()
        raise
