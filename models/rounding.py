"""Rounding scaled channel counts, shared by the families that scale width."""

from __future__ import annotations


def make_divisible(value: float, divisor: int) -> int:
    """`value` rounded to the nearest multiple of `divisor` (at least `divisor`), but never down by
    more than 10%: the rule of MobileNetV2's and EfficientNet's reference code."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded
