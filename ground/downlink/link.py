"""Downlink budgets: how long a payload takes on a link."""

from __future__ import annotations

from dataclasses import dataclass

from ground.errors import LinkRateError


@dataclass(frozen=True)
class Link:
    name: str
    bits_per_second: float

    def seconds(self, nbytes: int) -> float:
        return nbytes * 8 / self.bits_per_second


LINKS = {
    "uhf": Link("UHF 9.6 kbit/s", 9_600),
    "s-band": Link("S-band 2 Mbit/s", 2_000_000),
    "x-band": Link("X-band 150 Mbit/s", 150_000_000),
}


MIN_RATE, MAX_RATE = 1.0, 1e12  # bit/s: below, nothing moves in a mission's time; above, no radio


def parse_link(text: str) -> Link:
    """A preset name (uhf, s-band, x-band) or a rate in bit/s, e.g. 9600 or 2e6."""
    if text.lower() in LINKS:
        return LINKS[text.lower()]
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not MIN_RATE <= rate <= MAX_RATE:
        raise LinkRateError(f"link {text!r}: give a preset ({', '.join(LINKS)}) or a positive rate in bit/s, "
                            f"{MIN_RATE:g} to {MAX_RATE:g}")
    return Link(f"{rate:g} bit/s", rate)


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def format_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
