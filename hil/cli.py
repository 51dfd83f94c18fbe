"""`orbitlite hil …`: hardware-in-the-loop commands."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import click

from hil.boards.cli import boards
from hil.bench.cli import bench, compare
from hil.deploy.bundle import build_bundle
from hil.deploy.cli import bundle as bundle_command, deploy as deploy_command, rollback
from hil.emulated.cli import emulate
from hil.link import transfer
from hil.link.client import Client
from onboard.errors import CommandRefused, LinkError
from onboard.contracts import bundle
from onboard.contracts.product import NODATA, product_file_name, read_product
from onboard.files import ensure_writable_dir, fsync_dir, write_verified
from onboard.link.files import DEFAULT_CHUNK, MAX_CHUNK, MIN_CHUNK
from onboard.link.port import open_port
from onboard.link.sealing import new_key, new_nonce, read_key, rekeyed
from onboard.schema import FiniteFloat


@click.group()
def hil() -> None:
    """Hardware in the loop: measure models on a flight-like board."""


@hil.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The key file to write (hex).")
def keygen(out: Path) -> None:
    """Write a new pre-shared link key; give the same file to the payload's serve config (link.key_file)."""
    if out.exists():
        raise click.ClickException(f"{out} exists: a link key is not overwritten; remove it first")
    write_verified(out, (new_key() + "\n").encode(), private=True)
    click.echo(f"link key -> {out}")


@hil.group()
@click.option("--port", required=True, help="Serial device (e.g. /dev/ttyUSB0) or a pyserial URL.")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(50))
@click.option("--key-file", required=True, type=click.Path(path_type=Path), help="The pre-shared key (hil keygen).")
@click.option("--timeout", default=0.5, show_default=True, type=FiniteFloat(0.01),
              help="Seconds to wait for an answer beyond the frames' wire time, before retransmitting.")
@click.option("--retries", default=10, show_default=True, type=click.IntRange(0))
@click.pass_context
def link(ctx: click.Context, port: str, baud: int, key_file: Path, timeout: float, retries: int) -> None:
    """Command the payload over its serial link (authenticated, acknowledged, retransmitted).

    \b
    Example:
      orbitlite hil link --port /dev/ttyUSB0 --key-file link.key status
      orbitlite hil link --port /dev/ttyUSB0 --key-file link.key upload scene.npy files/scene.npy
    """
    # opened when a command runs, not before: `link COMMAND --help` needs no port
    def open_client() -> Client:
        key = read_key(key_file)  # the cheap check first
        return Client(open_port(port, baud), key, timeout=timeout, retries=retries)

    ctx.obj = open_client


def _with_client(command):
    """Hand the command the link's client, opened now."""
    @click.pass_obj
    @functools.wraps(command)
    def run(open_client, *args, **kwargs):
        return command(open_client(), *args, **kwargs)
    return run


_chunk_option = click.option(
    "--chunk", default=DEFAULT_CHUNK, show_default=True, type=click.IntRange(MIN_CHUNK, MAX_CHUNK),
    help="The largest chunk in bytes; it halves on a noisy line and grows back on a clean one.")


def _show(result: object) -> None:
    click.echo(json.dumps(result, indent=2, default=lambda b: b.hex() if isinstance(b, bytes) else str(b)))


@link.command()
@_with_client
def ping(client: Client) -> None:
    """Round trip to the payload."""
    start = time.monotonic()
    result = client.call("ping")
    click.echo(f"pong in {1000 * (time.monotonic() - start):.1f} ms; payload up {result['uptime_s']:.0f} s")


@link.command()
@_with_client
def status(client: Client) -> None:
    """The payload's telemetry: scene in progress, spool, budgets, store, slot, link counters."""
    _show(client.call("status"))


@link.command("set-budgets")
@click.option("--cpu-seconds", type=FiniteFloat(), help="CPU-seconds per scene (0 lifts the limit).")
@click.option("--deadline-seconds", type=FiniteFloat(), help="Wall-clock seconds per scene (0 lifts the limit).")
@click.option("--reserve", type=FiniteFloat(0, 1, max_open=True), help="Battery fraction never used.")
@click.option("--run-in-eclipse/--no-run-in-eclipse", default=None)
@_with_client
def set_budgets(client: Client, cpu_seconds: float | None, deadline_seconds: float | None, reserve: float | None,
                run_in_eclipse: bool | None) -> None:
    """Change the budgets from the payload's next scene on."""
    args = {k: (None if v == 0 and k.endswith("seconds") else v) for k, v in
            [("cpu_seconds", cpu_seconds), ("deadline_seconds", deadline_seconds), ("reserve", reserve),
             ("run_in_eclipse", run_in_eclipse)] if v is not None}
    if not args:
        raise click.UsageError("give at least one budget to set")
    _show(client.call("set_budgets", **args))


@link.command("run-scene")
@click.argument("path")
@_with_client
def run_scene(client: Client, path: str) -> None:
    """Queue an uploaded scene (PATH under the payload's files/) for the service."""
    result = client.call("run_scene", path=path)
    click.echo(f"{result['queued']} queued, {result['ahead']} scene(s) ahead")


@link.command()
@click.option("-n", default=20, show_default=True, type=click.IntRange(1))
@_with_client
def products(client: Client, n: int) -> None:
    """The payload's downlink queue, next first."""
    for p in client.call("products", n=n):
        click.echo(f"product/{p['product_id']}  {p['scene_id']}  {p['model_id']}  priority {p['priority']}  "
                   f"{p['size']} bytes")


@link.command()
@click.argument("source")
@click.argument("dest", type=click.Path(path_type=Path))
@_chunk_option
@click.option("--ack", is_flag=True, help="For a product: acknowledge it once held, so it leaves the payload's store.")
@_with_client
def download(client: Client, source: str, dest: Path, chunk: int, ack: bool) -> None:
    """Fetch SOURCE (product/ID or file/PATH) into DEST, resuming an interrupted download of it."""
    _report(_transfer(lambda progress: transfer.download(client, source, dest, chunk, progress),
                      f"{source} -> {dest}"), client)
    if ack and source.startswith("product/"):
        client.call("ack_product", id=int(source.split("/", 1)[1]))
        click.echo(f"{source} acknowledged")


@link.command("downlink")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory for the products.")
@_chunk_option
@click.option("--max", "most", type=click.IntRange(1), help="Stop after this many products.")
@_with_client
def downlink_queue(client: Client, out_dir: Path, chunk: int, most: int | None) -> None:
    """Fetch the payload's queued products, next first, each verified and then acknowledged, so it
    leaves the payload's store. Run it again after a broken link: it resumes where it stopped."""
    ensure_writable_dir(out_dir)
    fetched = 0
    while most is None or fetched < most:
        queue = client.call("products", n=1)
        if not queue:
            break
        p = queue[0]
        source, dest = f"product/{p['product_id']}", out_dir / product_file_name(p["scene_id"], p["model_id"])
        t = _transfer(lambda progress: transfer.download(client, source, dest, chunk, progress),
                      f"{source} -> {dest.name}")
        product = read_product(dest)  # a product that does not decode stays on board, unacknowledged
        client.call("ack_product", id=p["product_id"])
        fetched += 1
        classified = int((product.class_map != NODATA).sum())
        click.echo(f"{dest}: {product.scene_id} by {product.model_id}, {classified} tiles classified; "
                   f"{t.size} bytes in {t.seconds:.1f} s; acknowledged")
    click.echo(f"{fetched} product(s) fetched; {client.stats.retransmissions} retransmission(s)")


@link.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("dest")
@_chunk_option
@_with_client
def upload(client: Client, path: Path, dest: str, chunk: int) -> None:
    """Send PATH to DEST, a file name directly in an upload area of the payload (files/NAME, the
    inactive slot's slots/a|b/NAME, or the spool's), resuming an interrupted upload of the same
    file; it is installed only whole and verified."""
    _report(_transfer(lambda progress: transfer.upload(client, path, dest, chunk, progress),
                      f"{path} -> {dest}"), client)


@link.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--slot", type=click.Choice(["a", "b"]), help="The slot to deploy into [default: the inactive one].")
@_chunk_option
@_with_client
def deploy(client: Client, models: tuple[Path, ...], slot: str | None, chunk: int) -> None:
    """Ship MODELS (each with its manifest) as a bundle into a model slot, emptied first, then
    switch to it: the payload checks the files against the bundle's hashes and self-tests the
    models first, and keeps the active slot if anything fails. The active slot is never written.
    A file whose upload broke off resumes where it stopped when deploy runs again."""
    active = client.call("status")["active_slot"]
    target = slot or ("b" if active == "a" else "a")
    if target == active:
        raise click.UsageError(f"slot {target} is active: deploy into the other one, then switch")
    with tempfile.TemporaryDirectory() as scratch:
        built = build_bundle(list(models), Path(scratch) / "bundle")
        client.call("clear_slot", slot=target)  # a slot holds its bundle and nothing else
        # the bundle manifest last: a slot is only whole once it is there
        for f in [*(Path(scratch) / "bundle" / name for name in built.files),
                  Path(scratch) / "bundle" / bundle.MANIFEST_NAME]:
            _report(_transfer(lambda progress: transfer.upload(client, f, f"slots/{target}/{f.name}", chunk, progress),
                              f"{f.name} -> slots/{target}/"), client)
    result = client.call("switch_slot", slot=target)
    click.echo(f"slot {result['active_slot']} active: {', '.join(result['models'])}")


@link.command("switch-slot")
@click.argument("slot", type=click.Choice(["a", "b"]))
@_with_client
def switch_slot(client: Client, slot: str) -> None:
    """Self-test the models in SLOT and, if they pass, make it the active slot."""
    result = client.call("switch_slot", slot=slot)
    click.echo(f"slot {result['active_slot']} active: {', '.join(result['models'])}")


@link.command()
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The new key file to write (hex); the old key is refused once the payload has the new one.")
@_with_client
def rekey(client: Client, out: Path) -> None:
    """Re-key the link: the payload and the ground derive a new key from the current one and a
    random nonce (no key crosses the link), and the payload's counter starts again from 0; the
    way out once the counter's range is spent. The payload keeps the new key in its link state.

    The new key is written to OUT.pending before the command goes, and renamed to OUT once the
    payload's answer, or a ping under the new key, confirms it; it is removed if the payload
    refuses the re-key or still answers the old key. If nothing answers, OUT.pending stays: try
    `ping` with it."""
    pending = out.with_name(out.name + ".pending")
    if out.exists():
        raise click.ClickException(f"{out} exists: a link key is not overwritten; remove it first")
    if pending.exists():
        raise click.ClickException(f"{pending} exists: an earlier re-key went unconfirmed. If `ping` works with "
                                   f"--key-file {pending}, the payload took it: rename it to {out}; if it works "
                                   f"with the old key, remove {pending}")
    nonce = new_nonce()
    write_verified(pending, (rekeyed(client.key, nonce).hex() + "\n").encode(), private=True)
    try:
        client.rekey(nonce)
    except CommandRefused:
        pending.unlink()
        raise
    except LinkError as exc:
        raise LinkError(f"{exc}; {pending} holds the new key in case the payload took it") from None
    pending.rename(out)
    fsync_dir(out.parent)
    click.echo(f"link re-keyed: the new key is in {out}; the payload refuses the old one from now on")


def _transfer(run, label: str) -> transfer.Transfer:
    """Run a transfer under a progress bar, made once the transfer knows the file's size."""
    with contextlib.ExitStack() as stack:
        bars: list = []

        def progress(moved: int, size: int) -> None:
            if not bars:
                bars.append(stack.enter_context(click.progressbar(length=size, label=label, show_pos=True,
                                                                  file=sys.stderr)))
            bars[0].update(moved)

        return run(progress)


def _report(t: transfer.Transfer, client: Client) -> None:
    resumed = f", resumed at byte {t.resumed_at}" if t.resumed_at else ""
    click.echo(f"{t.name}: {t.size} bytes in {t.seconds:.1f} s ({t.bytes_per_s:.0f} B/s{resumed}; "
               f"{client.stats.retransmissions} retransmission(s))")


hil.add_command(boards)
hil.add_command(bench)
hil.add_command(compare)
hil.add_command(emulate)
hil.add_command(deploy_command)
hil.add_command(rollback)
hil.add_command(bundle_command)
