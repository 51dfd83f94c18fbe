"""Power meters: the modelled one over a board's real /proc/stat, the INA219 and INA260 against a
stand-in I2C bus (the chips cannot exist here: `StandInBus` answers their registers as the
datasheets lay them out), the SCPI supply against pyvisa-sim's SIMULATED instrument
(tests/data/psu.yaml) and pyvisa-py's real TCP/IP client, and `measure`'s integration."""

from __future__ import annotations

import errno
import os
import shutil
import time

import pytest

from hil.boards.meters import Reading, measure
from hil.boards.meters.i2c import open_bus
from hil.boards.meters.ina219 import Ina219
from hil.boards.meters.ina260 import Ina260
from hil.boards.meters.modelled import ModelledMeter, board_cpu
from hil.boards.transport import LocalTransport
from hil.errors import MeterError
from tests.conftest import ROOT, assert_one_line_error, orbitlite
from tests.sshd import free_port

PSU_YAML = ROOT / "tests/data/psu.yaml"
LOCAL = (ROOT / "hil/boards/profiles/local.toml").read_text()


class StandInBus:
    """A STAND-IN for smbus2's SMBus: one device at `address` whose 16-bit registers hold `registers`
    (big-endian on the wire, as INA2xx send them); nothing answers at other addresses."""

    def __init__(self, address: int, registers: dict[int, int]) -> None:
        self.address, self.registers, self.closed = address, registers, False

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        if i2c_addr != self.address or register not in self.registers:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        value = self.registers[register] & 0xFFFF
        return [value >> 8, value & 0xFF][:length]

    def close(self) -> None:
        self.closed = True


def _ina219_bus(amps: float, volts: float, shunt_ohms: float = 0.1) -> StandInBus:
    return StandInBus(0x40, {0x00: 0x399F, 0x01: round(amps * shunt_ohms / 10e-6), 0x02: round(volts / 4e-3) << 3 | 0b10})


def test_ina219_reads_current_from_the_shunt_and_voltage_from_the_bus():
    r = Ina219(_ina219_bus(0.9, 5.1), 0x40, 0.1, "stand-in bus").read()
    assert r.amps == pytest.approx(0.9) and r.volts == pytest.approx(5.1) and r.watts == pytest.approx(4.59)
    backwards = Ina219(_ina219_bus(-0.25, 5.0), 0x40, 0.1, "stand-in bus").read()  # the shunt's register is signed
    assert backwards.amps == pytest.approx(-0.25)
    assert Ina219(_ina219_bus(2.0, 5.0, 0.01), 0x40, 0.01, "stand-in bus").read().amps == pytest.approx(2.0)


def test_ina219_refusals():
    with pytest.raises(MeterError, match=r"ina219 on stand-in bus at 0x41, 0.1 Ohm shunt does not answer: Remote I/O"):
        Ina219(_ina219_bus(1, 5), 0x41, 0.1, "stand-in bus")
    bus = _ina219_bus(1, 5)
    bus.registers[0x02] |= 1  # the math overflow flag
    with pytest.raises(MeterError, match="overflow"):
        Ina219(bus, 0x40, 0.1, "stand-in bus").read()


def test_ina260_reads_its_own_registers_and_knows_itself():
    registers = {0x01: 720, 0x02: 4080, 0x03: 459, 0xFE: 0x5449, 0xFF: 0x2270}
    meter = Ina260(StandInBus(0x40, registers), 0x40, "stand-in bus")
    r = meter.read()
    assert (r.amps, r.volts, r.watts) == pytest.approx((0.9, 5.1, 4.59))
    registers[0x01] = 0x10000 - 80  # -0.1 A: a signed register
    assert meter.read().amps == pytest.approx(-0.1)
    meter.close()
    assert meter.bus.closed
    with pytest.raises(MeterError, match=r"not an INA260 \(manufacturer id 0x5449, die id 0x2260\)"):
        Ina260(StandInBus(0x40, {**registers, 0xFF: 0x2260}), 0x40, "stand-in bus")  # an INA226's die id


def test_an_absent_i2c_bus_is_one_line(tmp_path):
    with pytest.raises(MeterError, match=r"no I2C bus /dev/i2c-250 on this machine"):
        open_bus(250)
    (tmp_path / "local.toml").write_text(LOCAL.replace('kind = "modelled"', 'kind = "ina260"\nbus = 250'))
    assert_one_line_error(orbitlite("hil", "boards", "--boards-dir", str(tmp_path), "check", "local"),
                          "no I2C bus /dev/i2c-250")


def _scpi_profile(tmp_path, **meter: str) -> None:
    shutil.copy(PSU_YAML, tmp_path / "psu.yaml")
    settings = {"resource": "TCPIP::psu.sim::INSTR", "backend": "psu.yaml@sim", **meter}  # relative to the profile
    lines = "\n".join(f'{k} = "{v}"' for k, v in settings.items())
    (tmp_path / "local.toml").write_text(LOCAL.replace('kind = "modelled"', f'kind = "scpi"\n{lines}'))


def test_scpi_supply_through_pyvisa_sim(tmp_path):
    _scpi_profile(tmp_path)
    result = orbitlite("hil", "boards", "--boards-dir", str(tmp_path), "check", "local")
    assert result.returncode == 0, result.stderr
    assert ("meter        scpi supply TCPIP::psu.sim::INSTR (SIMULATED,pyvisa-sim PSU,0,1.0): "
            "5.100 V, 0.900 A, 4.590 W now") in result.stdout
    _scpi_profile(tmp_path, amps_query="MEAS:CURR? CH1")
    assert "5.100 V, 1.500 A, 7.650 W now" in orbitlite("hil", "boards", "--boards-dir", str(tmp_path), "check",
                                                         "local").stdout


@pytest.mark.parametrize("meter, fragment", [
    ({"amps_query": "MEAS:POW?"}, "answered 'ERROR' to 'MEAS:POW?', not a number"),
    ({"resource": f"TCPIP::127.0.0.1::{free_port()}::SOCKET", "backend": "@py"}, "TCPIP::127.0.0.1::"),
    ({"backend": "@nothing"}, "the VISA backend '@nothing' cannot be used"),
], ids=["nonsense", "no-answer", "backend"])
def test_a_scpi_supply_that_does_not_answer_is_one_line(tmp_path, meter, fragment):
    _scpi_profile(tmp_path, **meter)
    assert_one_line_error(orbitlite("hil", "boards", "--boards-dir", str(tmp_path), "check", "local"),
                          "scpi supply", fragment)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_modelled_meter_follows_the_busy_time():
    clock, busy = Clock(), [50.0]
    meter = ModelledMeter(2.0, 6.0, lambda: (busy[0], 2), clock)

    def work() -> str:  # 10 s on the clock, one of two cores busy
        clock.now += 10
        busy[0] += 10
        return "done"

    result, energy = measure(meter, work, clock=clock)
    assert result == "done" and energy.modelled and energy.meter.startswith("modelled from idle 2 W and busy 6 W")
    assert (energy.joules, energy.seconds, energy.mean_watts, energy.samples) == (40.0, 10.0, 4.0, 2)
    clock.now += 5  # idle: no busy time
    assert meter.read() == Reading(2.0)
    clock.now += 1
    busy[0] += 4  # more than the cores can do: clamped
    assert meter.read() == Reading(6.0)


def test_the_modelled_meter_reads_a_real_boards_proc_stat(tmp_path):
    busy_s, cores = board_cpu(LocalTransport(tmp_path))()
    assert busy_s > 0 and cores == os.cpu_count()


def test_measure_samples_a_real_meter_while_the_work_runs():
    class Steady:
        name, modelled, period = "steady stand-in", False, 0.001
        reads = 0

        def read(self) -> Reading:
            self.reads += 1
            return Reading(4.5, 5.0, 0.9)

        def close(self) -> None:
            pass

    meter = Steady()
    clock = Clock()

    def work() -> None:
        deadline = time.monotonic() + 60
        while meter.reads < 5:  # until the sampler has read a few times
            assert time.monotonic() < deadline, "the sampler did not read"
            clock.now += 0.25
            time.sleep(0.001)

    _, energy = measure(meter, work, clock=clock)
    assert energy.samples == meter.reads >= 6 and not energy.modelled
    assert energy.joules == pytest.approx(4.5 * energy.seconds) and energy.peak_watts == 4.5
