"""A bench power supply feeding the board, its voltage and current read back over SCPI through
pyvisa (with pyvisa-py, `@py`: TCP/IP, serial and USB-TMC without a vendor's VISA). The profile
gives the VISA resource and the two queries (SCPI's `MEASure:VOLTage?` and `MEASure:CURRent?` by
default; a supply with channels wants e.g. `MEAS:CURR? CH1`). The tests use pyvisa-sim's
simulated instrument (`backend = "psu.yaml@sim"`), named as such."""

from __future__ import annotations

import math
import warnings

import pyvisa

from hil.boards.meters import Reading
from hil.boards.profile import Board, ScpiSpec
from hil.boards.transport import Transport
from hil.errors import MeterError

ERRORS = (pyvisa.errors.Error, OSError, ValueError)  # what pyvisa and its backends raise


class ScpiSupply:
    modelled = False
    period = 0.1  # s; two queries over a bench link each time

    def __init__(self, spec: ScpiSpec) -> None:
        self.spec = spec
        self.name = f"scpi supply {spec.resource}"
        try:
            self._rm = pyvisa.ResourceManager(spec.backend)
        except ERRORS as exc:
            raise MeterError(f"{self.name}: the VISA backend {spec.backend!r} cannot be used: {_brief(exc)}") from None
        try:
            self._inst = self._rm.open_resource(spec.resource, timeout=spec.timeout_ms, read_termination="\n",
                                                write_termination="\n")
        except ERRORS as exc:
            self._rm.close()
            raise MeterError(f"{self.name} cannot be opened: {_brief(exc)}") from None
        try:
            identity = self._query("*IDN?")
        except MeterError:
            self._rm.close()
            raise
        self.name = f"scpi supply {spec.resource} ({identity[:80]})"

    def _query(self, query: str) -> str:
        try:
            with warnings.catch_warnings():  # pyvisa warns of an answer without its terminator
                warnings.simplefilter("ignore")
                answer = self._inst.query(query).strip()
        except ERRORS as exc:
            raise MeterError(f"{self.name} does not answer {query!r}: {_brief(exc)}") from None
        if not answer:
            raise MeterError(f"{self.name} does not answer {query!r}: nothing came back")
        return answer

    def _number(self, query: str) -> float:
        answer = self._query(query)
        try:
            value = float(answer)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise MeterError(f"{self.name} answered {answer[:40]!r} to {query!r}, not a number")
        return value

    def read(self) -> Reading:
        volts, amps = self._number(self.spec.volts_query), self._number(self.spec.amps_query)
        return Reading(volts * amps, volts, amps)

    def close(self) -> None:
        self._inst.close()
        self._rm.close()


def _brief(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def open_meter(spec: ScpiSpec, board: Board, transport: Transport) -> ScpiSupply:
    return ScpiSupply(spec)
