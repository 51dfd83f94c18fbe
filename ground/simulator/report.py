"""A simulation's report: JSON-ready data, a summary table, and plots."""

from __future__ import annotations

import io
import json
import math
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ground.downlink.link import format_bytes, format_seconds
from ground.simulator.payload import Series, Simulation
from onboard.files import write_verified
from onboard.schema import to_builtins


def _iso(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=round(seconds))).isoformat(timespec="seconds")


def report(sim: Simulation, every_s: float = 600.0) -> dict[str, Any]:
    """The simulation as JSON-ready data; the series sampled every `every_s`."""
    c, geo = sim.config, sim.geometry
    config = to_builtins(c)
    config["start"] = c.start_time.isoformat()
    config["link"]["bits_per_second"] = c.link.link.bits_per_second
    every = max(1, round(every_s / geo.step_s))
    picked = np.arange(every - 1, len(geo.t), every)
    modes = {}
    for name, m in sim.modes.items():
        body: dict[str, Any] = {f.name: getattr(m, f.name) for f in fields(m) if f.repr}
        body["covered_at"] = [None if math.isnan(s) else _iso(geo.start, s) for s in m.covered_at_s]
        body["extract_at"] = [None if math.isnan(s) else _iso(geo.start, s) for s in m.extract_at_s]
        body["series"] = {f.name: np.round(getattr(m.series, f.name)[picked], 4).tolist() for f in fields(Series)}
        modes[name] = body
    return {
        "config": config,
        "days": sim.days,
        "start": c.start_time.isoformat(),
        "orbit_period_s": round(c.orbit.period_s, 1),
        "eclipse_fraction": round(geo.eclipse_fraction, 4),
        "passes": [{"station": p.station, "aos": _iso(geo.start, p.aos), "los": _iso(geo.start, p.los),
                    "duration_s": round(p.los - p.aos, 1), "max_elevation_deg": round(p.max_elevation_deg, 2)}
                   for p in geo.passes],
        "contacts": [{"station": p.station, "start": _iso(geo.start, p.aos), "end": _iso(geo.start, p.los)}
                     for p in geo.contacts],
        "link_capacity_bytes": float(geo.capacity.sum()),
        "scenes": {"captured": len(geo.captures), "capture_times": [_iso(geo.start, s) for s in geo.t[geo.captures]],
                   "values": np.round(geo.values, 4).tolist()},
        "series_t_s": (geo.t[picked] + geo.step_s).tolist(),
        "modes": modes,
    }


def _span(seconds: float | None) -> str:
    return "-" if seconds is None else format_seconds(seconds) if seconds < 86400 else f"{seconds / 86400:.1f} d"


def summary(sim: Simulation) -> str:
    """A few lines and a table, one row per mode."""
    c, geo = sim.config, sim.geometry
    contact = sum(p.los - p.aos for p in geo.contacts)
    im = c.imaging
    lines = [
        f"{c.orbit.name} from {geo.start:%Y-%m-%d %H:%M} UTC for {sim.days:g} d in {geo.step_s:g} s steps: "
        f"{c.orbit.period_s / 60:.1f} min orbit, {100 * geo.eclipse_fraction:.1f}% in eclipse",
        f"{len(geo.passes)} passes over {', '.join(s.name for s in c.stations)}, {format_seconds(contact)} of contact; "
        f"{c.link.link.name}, {c.link.setup_s:g} s set-up, {100 * c.link.protocol_overhead:g}% protocol overhead "
        f"-> {format_bytes(geo.capacity.sum())} of payload",
        f"{len(geo.captures)} scenes ({im.scenes_per_orbit} per orbit over sunlit {'land' if im.over == 'land' else 'ground'}) of "
        f"{format_bytes(im.scene_bytes)} raw, {format_bytes(im.product_bytes)} product, "
        f"{format_bytes(im.extract_bytes)} extract; {format_bytes(c.storage_bytes)} store; "
        f"{c.processing.board.name} at {c.processing.tiles_per_s:g} tiles/s ({c.processing.source})",
        "",
        f"{'mode':<9}{'covered':>12}{'dropped':>9}{'delivered':>11}{'latency p50':>13}{'p90':>9}"
        f"{'backlog':>11}{'energy':>10}{'min charge':>12}",
    ]
    for m in sim.modes.values():
        lines.append(
            f"{m.mode:<9}{f'{m.covered}/{m.captured}':>12}{m.dropped:>9}{format_bytes(m.delivered_bytes):>11}"
            f"{_span(m.latency_median_s):>13}{_span(m.latency_p90_s):>9}{format_bytes(m.backlog_bytes_end):>11}"
            f"{m.processing_wh + m.transmit_wh:>7.1f} Wh{100 * m.min_state_of_charge:>11.0f}%"
            + (f"   + {m.extracts_delivered} raw extracts" if m.mode == "value" else ""))
    lines.append("covered: scenes whose raw data (raw) or product (products, value) reached the ground in full; "
                 "latency: from capture to the last byte")
    lines.append("energy: spent on processing and transmitting; the platform and the idle board draw "
                 f"{next(iter(sim.modes.values())).platform_wh:.0f} Wh besides")
    return "\n".join(lines)


_COLOURS = {"raw": "#d62728", "products": "#1f77b4", "value": "#2ca02c"}


def _positive(values: np.ndarray) -> np.ndarray:
    """For a log axis: zeros left out."""
    return np.where(values > 0, values, np.nan)


def write_outputs(sim: Simulation, out_dir: Path) -> list[Path]:
    """`simulation.json` and the plots (storage, delivered, passes, power) in `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    geo, start = sim.geometry, sim.geometry.start
    days = (geo.t + geo.step_s) / 86400
    xlabel = f"days since {start:%Y-%m-%d %H:%M} UTC"
    paths = [write_verified(out_dir / "simulation.json", (json.dumps(report(sim), indent=1) + "\n").encode())]

    def save(fig: Any, name: str) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(write_verified(out_dir / name, buffer.getvalue()))

    fig, (ax_store, ax_backlog, ax_wait) = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    for name, m in sim.modes.items():
        ax_store.plot(days, m.series.storage_bytes / 1e9, color=_COLOURS[name], label=name)
        ax_backlog.plot(days, _positive(m.series.backlog_bytes), color=_COLOURS[name], label=name)
        if name != "raw":
            ax_wait.plot(days, m.series.waiting_scenes, color=_COLOURS[name], label=name)
    ax_store.axhline(sim.config.storage_bytes / 1e9, color="k", ls="--", lw=1, label="capacity")
    ax_store.set(ylabel="on-board storage (GB)", title="Storage and backlog")
    ax_backlog.set(yscale="log", ylabel="waiting for downlink (bytes)")
    ax_wait.set(ylabel="scenes waiting\nfor processing", xlabel=xlabel)
    for ax in (ax_store, ax_backlog, ax_wait):
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    save(fig, "storage.png")

    fig, (ax_bytes, ax_scenes) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for name, m in sim.modes.items():
        ax_bytes.plot(days, _positive(m.series.delivered_bytes), color=_COLOURS[name], label=name)
        ax_scenes.plot(days, m.series.covered_scenes, color=_COLOURS[name], label=name)
    ax_scenes.step(np.append(0, geo.t[geo.captures] / 86400), np.arange(len(geo.captures) + 1), where="post",
                   color="k", ls="--", lw=1, label="captured")
    ax_bytes.set(yscale="log", ylabel="delivered (bytes)", title="What reached the ground")
    ax_scenes.set(ylabel="scenes covered", xlabel=xlabel)
    for ax in (ax_bytes, ax_scenes):
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    save(fig, "delivered.png")

    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.5 * (len(sim.config.stations) + 2)))
    rows = [s.name for s in sim.config.stations]
    for y, name in enumerate(rows):
        ax.broken_barh([(p.aos / 86400, (p.los - p.aos) / 86400) for p in geo.passes if p.station == name],
                       (y - 0.35, 0.7), color="#9ecae1")
        ax.broken_barh([(p.aos / 86400, (p.los - p.aos) / 86400) for p in geo.contacts if p.station == name],
                       (y - 0.2, 0.4), color="#08519c")
    y_light, y_captures = len(rows), len(rows) + 1
    shadow = geo.illumination < 0.5
    ax.fill_between(geo.t / 86400, y_light - 0.35, y_light + 0.35, where=shadow, color="#444444", step="post", lw=0)
    ax.vlines(geo.t[geo.captures] / 86400, y_captures - 0.35, y_captures + 0.35, color="#e6550d", lw=0.6)
    ax.set_yticks(range(len(rows) + 2), [*rows, "eclipse", "captures"])
    ax.set(xlabel=xlabel, xlim=(0, len(geo.t) * geo.step_s / 86400),
           title="Passes (light: in view, dark: used for downlink), eclipses and captures")
    save(fig, "passes.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    for (name, m), style in zip(sim.modes.items(), ("-", "--", ":")):
        ax.plot(days, 100 * m.series.state_of_charge, color=_COLOURS[name], label=name, lw=1.2, ls=style)
    ax.axhline(100 * sim.config.power.reserve, color="k", ls="--", lw=1, label="reserve")
    ax.fill_between(geo.t / 86400, 0, 1, where=shadow, transform=ax.get_xaxis_transform(), color="#bbbbbb",
                    alpha=0.4, step="post", lw=0, label="eclipse")
    ax.set(ylabel="battery charge (%)", xlabel=xlabel, ylim=(0, 102), title="Battery")
    ax.legend(loc="lower left", fontsize=8, ncol=5)
    save(fig, "power.png")
    return paths
