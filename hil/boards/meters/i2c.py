"""The I2C bus the INA meters sit on, through smbus2: on the machine that runs the harness (its own
pins, or a USB-I2C adapter), with the shunt in the board's supply. Registers are 16-bit, big-endian."""

from __future__ import annotations

from typing import Protocol

from smbus2 import SMBus

from hil.errors import MeterError


class Bus(Protocol):
    """What the meters use of smbus2's SMBus."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def close(self) -> None: ...


def open_bus(number: int) -> Bus:
    """smbus2's SMBus on /dev/i2c-`number`, or MeterError in one line."""
    try:
        return SMBus(number)
    except FileNotFoundError:
        raise MeterError(f"no I2C bus /dev/i2c-{number} on this machine (is I2C enabled, the adapter plugged in?)") from None
    except OSError as exc:
        raise MeterError(f"cannot open the I2C bus /dev/i2c-{number}: {exc.strerror or exc}") from None


def read_register(bus: Bus, address: int, register: int, signed: bool, where: str) -> int:
    """The 16-bit register `register` of the device at `address`; MeterError if it does not answer."""
    try:
        high, low = bus.read_i2c_block_data(address, register, 2)
    except OSError as exc:
        raise MeterError(f"{where} does not answer: {exc.strerror or exc}") from None
    value = high << 8 | low
    return value - (1 << 16) if signed and value & 0x8000 else value
