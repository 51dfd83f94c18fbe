"""`orbitlite downlink …`: what reaches the ground."""

from __future__ import annotations

from pathlib import Path

import click

from ground.cli.options import link_option
from ground.downlink.link import parse_link
from onboard.schema import FiniteFloat


@click.group()
def downlink() -> None:
    """What reaches the ground: decode products, link budgets."""


@downlink.command()
@click.argument("products", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The packet stream to write.")
@click.option("--max-data", default=1024, show_default=True, type=click.IntRange(41, 65536),
              help="Bytes of data field per packet.")
def packetize(products: tuple[Path, ...], out: Path, max_data: int) -> None:
    """Cut PRODUCTS into CCSDS Space Packets (133.0-B-2), one APID per product type."""
    from ground.downlink.packets import packetize_products
    from onboard.files import write_verified

    packets = packetize_products(list(products), max_data)
    stream = b"".join(packets)
    click.echo(f"{len(products)} product(s) -> {len(packets)} packets, {len(stream)} bytes -> {write_verified(out, stream)}")


@downlink.command()
@click.argument("stream", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory for the rebuilt products.")
def reassemble(stream: Path, out_dir: Path) -> None:
    """Rebuild products from a CCSDS packet stream into OUT, each under the name its scene and
    model ids make; report, a line each, any that did not arrive whole (with how much did), was
    damaged or does not decode (exit 1 if any). An empty stream is an error."""
    from ground.downlink.packets import rebuild_products

    result = rebuild_products(stream, out_dir)
    for path, size in result.written:
        click.echo(f"rebuilt {path} ({size} bytes)")
    for problem in result.problems:
        click.echo(f"not rebuilt: {problem}", err=True)
    if result.problems:
        raise SystemExit(1)


@downlink.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--days", default=7.0, show_default=True, type=FiniteFloat(), help="Days to simulate from the config's start "
              "(by default the TLE's epoch).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for simulation.json and the plots.")
@link_option(None, " Overrides the config's.")
@click.option("--bench", "bench_path", type=click.Path(path_type=Path),
              help="An `orbitlite hil bench` result (result.json): the board's tiles/s and watts from it, "
                   "over the config's processing.")
def simulate(config: Path | None, days: float, out_dir: Path, link: str | None, bench_path: Path | None) -> None:
    """Simulate the downlink budget of CONFIG (JSON or TOML; built-in defaults without it: a
    Sentinel-2-like orbit, SvalSat and Inuvik) for raw scenes, on-board products only, and products
    plus the most valuable raw extracts; print a summary, write simulation.json and plots."""
    from ground.simulator.config import load_config, with_bench
    from ground.simulator.geometry import step_count
    from ground.simulator.payload import MODES, simulate as run
    from ground.simulator.report import summary, write_outputs
    from onboard.files import ensure_writable_dir
    from onboard.progress import progress_bar

    cfg = load_config(config)
    if link is not None:
        cfg = cfg.with_link(link)
    if bench_path is not None:
        cfg = with_bench(cfg, bench_path)
    steps = step_count(cfg, days)
    ensure_writable_dir(out_dir)
    with progress_bar(len(MODES) * steps, "simulating") as bar:
        result = run(cfg, days, bar.update)
    click.echo(summary(result))
    for path in write_outputs(result, out_dir):
        click.echo(f"-> {path}")


@downlink.command()
@click.argument("product", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write PRODUCT's class map (PNG) and summary (JSON) here.")
@link_option("uhf")
def decode(product: Path, out_dir: Path | None, link: str) -> None:
    """Decode a product: print its summary, and write its class map (PNG and GeoTIFF, one pixel
    per tile, georeferenced when the scene was) and summary (JSON)."""
    from ground.downlink.decode import describe, write_decoded
    from onboard.contracts.product import read_product

    p = read_product(product)
    click.echo(describe(p, product.stat().st_size, parse_link(link)))
    if out_dir:
        png, tif, js = write_decoded(p, product, out_dir)
        click.echo(f"class map -> {png}\nclass map GeoTIFF -> {tif}\nsummary -> {js}")
