"""The report of a bench result: Markdown (report.md beside its PNG plots) and one self-contained
HTML page (report.html, the same plots embedded as data URIs), and the side-by-side comparison of
several results (`hil compare`). Plots: the latency histogram of every counted run, throughput
against threads (and batch), energy per tile.

matplotlib is imported only here, when a report is drawn: the harness runs without it, and a
command that draws says what to install where it is missing."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from onboard.contracts.bench import BenchReport, Timings
from onboard.files import ensure_writable_dir, write_verified

PLOTS = ("latency", "threads", "energy")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _title(r: BenchReport) -> str:
    emulated = " (emulated: not the real board's speed)" if r.board.emulated else ""
    return f"{r.model.id} on {r.board.name}{emulated}"


def plots(r: BenchReport) -> dict[str, bytes]:
    """The report's PNG plots by name."""
    plt = _pyplot()
    m = r.measured
    out = {}

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.hist([v / 1000 for v in m.latencies_us], bins=min(50, max(5, len(m.latencies_us) // 5)), color="#4477aa")
    for q, style in (("p50", "-"), ("p90", "--"), ("p99", ":")):
        ax.axvline(getattr(m.main, f"{q}_us") / 1000, color="k", linestyle=style, label=f"{q} "
                   f"{getattr(m.main, f'{q}_us') / 1000:.3g} ms")
    ax.set(xlabel="invoke time (ms)", ylabel="runs",
           title=f"{_title(r)}: {m.main.count} runs, {m.main.threads} thread(s), batch {m.main.batch}")
    ax.legend()
    out["latency"] = _png(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    ax1.plot([t.threads for t in m.threads_sweep], [t.tiles_per_s for t in m.threads_sweep], "o-", color="#4477aa")
    ax1.set(xlabel="threads", ylabel="tiles/s (invoke)", title=f"batch {m.main.batch}")
    ax1.set_xticks([t.threads for t in m.threads_sweep])
    ax2.plot([t.batch for t in m.batch_sweep], [t.tiles_per_s for t in m.batch_sweep], "o-", color="#228833")
    ax2.set(xlabel="batch (tiles per invoke)", ylabel="tiles/s (invoke)", title=f"{m.main.threads} thread(s)")
    if len(m.batch_sweep) > 1:
        ax2.set_xscale("log", base=2)
    ax2.set_xticks([t.batch for t in m.batch_sweep], [str(t.batch) for t in m.batch_sweep])
    for ax in (ax1, ax2):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Throughput: {_title(r)}")
    fig.tight_layout()
    out["threads"] = _png(fig)

    e = r.energy
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names, values = [], []
    if m.end_to_end:
        names.append("onboard run\n(end to end)")
        values.append(e.busy_watts / m.end_to_end.tiles_per_s * 1000)
    for t in m.batch_sweep:
        names.append(f"invoke\nbatch {t.batch}")
        values.append(e.busy_watts / t.tiles_per_s * 1000 if t.tiles_per_s else 0.0)
    bars = ax.bar(names, values, color=["#cc6677"] + ["#4477aa"] * (len(values) - 1) if m.end_to_end else "#4477aa")
    ax.bar_label(bars, fmt="%.3g")
    ax.margins(y=0.15)
    ax.set(ylabel="mJ per tile", title=f"Energy per tile at {e.busy_watts:g} W busy "
                                       f"({'meter: ' + e.meter if e.source == 'meter' else 'modelled from the profile'})")
    out["energy"] = _png(fig)
    return out


def _rows(r: BenchReport) -> list[tuple[str, str]]:
    m, e = r.measured, r.energy
    rows = [
        ("board", f"{r.board.name} ({r.board.arch}, {r.board.cores} cores, accelerator {r.board.accelerator}, "
                  f"via {r.board.transport})" + (" - EMULATED: timings are not the real board's" if r.board.emulated else "")),
        ("model", f"{r.model.file} ({r.model.id}), {r.model.size_bytes} bytes, {r.model.dtype} "
                  f"{r.model.tile[0]}x{r.model.tile[1]} px tiles, sha256 {r.model.sha256}"),
        ("software", f"orbitlite {m.versions.orbitlite}, numpy {m.versions.numpy}, {m.versions.interpreter}, "
                     f"Python {m.versions.python}, {m.versions.system}"),
        ("validity rule", f"at least {m.rule.min_runs} counted runs and {m.rule.min_seconds:g} s, at most "
                          f"{m.rule.max_seconds:g} s; {m.rule.warmup_runs} warm-up run(s)"),
        ("valid", "yes" if m.valid else "NOT VALID: " + "; ".join(
            f"threads {t.threads} batch {t.batch}: {', '.join(t.not_valid)}"
            for t in (m.main, *m.threads_sweep, *m.batch_sweep) if not t.valid)),
        ("Inference timings in us", f"Init: {m.main.init_us:.0f}, First inference: {m.main.first_inference_us:.0f}, "
                                    f"Warmup (avg): {_us(m.main.warmup_avg_us)}, Inference (avg): {m.main.avg_us:.1f}"),
        ("counted runs", f"count={m.main.count} min={m.main.min_us:.1f} max={m.main.max_us:.1f} avg={m.main.avg_us:.1f} "
                         f"std={m.main.std_us:.1f} p50={m.main.p50_us:.1f} p90={m.main.p90_us:.1f} p99={m.main.p99_us:.1f}"),
        ("invoke tiles/s", f"{m.main.tiles_per_s:.1f} ({m.main.threads} thread(s), batch {m.main.batch})"),
        ("peak memory footprint (MB)", f"{m.main.peak_memory_mb:.1f}"),
    ]
    if m.end_to_end:
        x = m.end_to_end
        rows.append(("onboard run, end to end", f"{x.tiles_per_s:.1f} tiles/s ({x.tiles} tiles of {x.scene} in "
                                                 f"{x.seconds:.3f} s), peak RSS {x.peak_rss_mb:.1f} MB"))
    rows += [
        ("energy", f"{e.mj_per_tile:.4g} mJ/tile, {e.mj_per_km2:.4g} mJ/km^2 ({e.extra_mj_per_tile:.4g} mJ/tile above "
                   f"idle); {'measured by meter ' + e.meter if e.source == 'meter' else 'MODELLED from the profile'}: "
                   f"{e.busy_watts:g} W busy, {e.idle_watts:g} W idle, {e.busy_seconds:.4g} s busy for {e.tiles} "
                   f"tiles ({e.of}); {e.km2_per_tile:.4g} km^2 per tile at {e.gsd_m:g} m GSD"),
        ("CPU before", _cpu(m.cpu_before)),
        ("CPU after", _cpu(m.cpu_after)),
        ("throttling", m.throttling or "none detected"),
    ]
    return rows


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _cpu(c) -> str:
    freq = "frequency not shown" if c.freq_mhz is None else f"{c.freq_mhz:g} MHz" + (
        "" if c.max_freq_mhz is None else f" (max {c.max_freq_mhz:g})")
    parts = [freq, "temperature not shown" if c.temp_c is None else f"{c.temp_c:g} C",
             *([] if c.throttled is None else [f"throttled={c.throttled}"])]
    return ", ".join(parts)


def _sweep_table(ts: tuple[Timings, ...]) -> list[list[str]]:
    return [[str(t.threads), str(t.batch), str(t.count), f"{t.avg_us:.1f}", f"{t.p50_us:.1f}", f"{t.p99_us:.1f}",
             f"{t.tiles_per_s:.1f}", "yes" if t.valid else "not valid"] for t in ts]


SWEEP_HEAD = ["threads", "batch", "count", "avg us", "p50 us", "p99 us", "tiles/s", "valid"]


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
       "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
       "img{max-width:100%}")


def write_report(r: BenchReport, out_dir: Path) -> list[Path]:
    """report.md with its PNGs beside it, and report.html with the same PNGs embedded."""
    ensure_writable_dir(out_dir)
    images = plots(r)
    written = [write_verified(Path(out_dir) / f"{name}.png", png) for name, png in images.items()]
    title = f"Bench: {_title(r)}"
    rows = _rows(r)
    sweeps = [("Thread sweep", _sweep_table(r.measured.threads_sweep)),
              ("Batch sweep", _sweep_table(r.measured.batch_sweep))]
    md = [f"# {title}", "", f"{r.created}; result schema {r.schema} version {r.version}", "",
          *_md_table(["", ""], [[k, v] for k, v in rows]), ""]
    for name, table in sweeps:
        md += [f"## {name}", "", *_md_table(SWEEP_HEAD, table), ""]
    md += [f"![{name}]({name}.png)" for name in images] + [""]
    written.append(write_verified(Path(out_dir) / "report.md", "\n".join(md).encode()))
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(r.created)}; result schema {r.schema} version "
            f"{r.version}</p>", _html_table(["", ""], [[k, v] for k, v in rows])]
    for name, table in sweeps:
        body += [f"<h2>{name}</h2>", _html_table(SWEEP_HEAD, table)]
    body += [f'<p><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'
             for name, png in images.items()]
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    written.append(write_verified(Path(out_dir) / "report.html", page.encode()))
    return written


COMPARE_HEAD = ["#", "result", "board", "model", "valid", "p50 us", "p99 us", "invoke tiles/s", "end-to-end tiles/s",
                "peak MB", "mJ/tile", "mJ/km^2", "energy"]


def compare_rows(results: list[tuple[str, BenchReport]]) -> list[list[str]]:
    rows = []
    for i, (name, r) in enumerate(results):
        m, e = r.measured, r.energy
        rows.append([str(i + 1), name, r.board.name + (" (emulated)" if r.board.emulated else ""), r.model.id,
                     "yes" if m.valid else "not valid", f"{m.main.p50_us:.1f}", f"{m.main.p99_us:.1f}",
                     f"{m.main.tiles_per_s:.1f}", f"{m.end_to_end.tiles_per_s:.1f}" if m.end_to_end else "-",
                     f"{m.main.peak_memory_mb:.1f}", f"{e.mj_per_tile:.4g}", f"{e.mj_per_km2:.4g}",
                     e.source if e.source == "modelled" else f"meter {e.meter}"])
    return rows


def write_compare(results: list[tuple[str, BenchReport]], out_dir: Path) -> list[Path]:
    """compare.md (the table) and compare.png (end-to-end tiles/s and mJ per tile side by side)."""
    plt = _pyplot()
    ensure_writable_dir(out_dir)
    labels = [f"{i + 1}: {r.board.name}\n{r.model.id}" for i, (_, r) in enumerate(results)]
    at = range(len(results))  # by position: two results of one board and model stay two bars
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * len(results)), 3.8))
    ax1.bar(at, [r.tiles_per_s for _, r in results], color="#4477aa", tick_label=labels)
    ax1.set(ylabel="tiles/s (end to end where measured)", title="Throughput")
    ax2.bar(at, [r.energy.mj_per_tile for _, r in results], tick_label=labels,
            color=["#cc6677" if r.energy.source == "meter" else "#999933" for _, r in results])
    ax2.set(ylabel="mJ per tile", title="Energy per tile (olive: modelled, rose: meter)")
    fig.tight_layout()
    written = [write_verified(Path(out_dir) / "compare.png", _png(fig))]
    md = ["# Bench results side by side", "", *_md_table(COMPARE_HEAD, compare_rows(results)), "", "![compare](compare.png)", ""]
    written.append(write_verified(Path(out_dir) / "compare.md", "\n".join(md).encode()))
    return written
