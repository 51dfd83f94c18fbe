"""`orbitlite hil boards`: list the board profiles (shipped and the user's), and check a board
through its transport. Other `hil` commands that take a board use
`boards_dir_option` for the same `--boards-dir`."""

from __future__ import annotations

from pathlib import Path

import click

from hil.boards.check import WIDTH, check_board, check_link, report
from hil.boards.drivers import open_meter, open_transport
from hil.boards.profile import ENV_VAR, Board, ModelledSpec, board_files, describe, find_board, load_board
from hil.boards.serial import SerialTransport
from hil.boards.transport import Transport
from hil.errors import BoardError, TransportError
from hil.table import text_table

boards_dir_option = click.option(
    "--boards-dir", type=click.Path(path_type=Path, file_okay=False), envvar=ENV_VAR, show_envvar=True,
    help="A folder of your own board profiles (NAME.toml); one named like a shipped one overrides it.")


@click.group(invoke_without_command=True)
@boards_dir_option
@click.pass_context
def boards(ctx: click.Context, boards_dir: Path | None) -> None:
    """The board profiles: with no command, list them (shipped and yours).

    \b
    Example:
      orbitlite hil boards
      orbitlite hil boards check rpi-emulated
    """
    ctx.obj = boards_dir
    if ctx.invoked_subcommand is not None:
        return
    rows, bad = [], []
    for name, (path, origin, overrides) in board_files(boards_dir).items():
        try:
            b = load_board(path, origin, overrides)
        except BoardError as exc:
            bad.append(str(exc))
            continue
        where = "shipped" if origin == "shipped" else f"yours: {path}" + (" (overrides the shipped one)"
                                                                          if overrides else "")
        rows.append((b.name, b.spec.arch, str(b.spec.cores), b.spec.accelerator, ", ".join(b.transport_kinds()),
                     where + (" [emulated]" if b.spec.emulated else "")))
    click.echo(text_table(("name", "arch", "cores", "accelerator", "transports", "from"), rows))
    if bad:
        raise BoardError(bad[0] + (f" (and {len(bad) - 1} more bad profile(s))" if len(bad) > 1 else ""))


@boards.command()
@click.argument("profile")
@click.option("--transport", "wanted", type=click.Choice(["ssh", "serial", "local"]),
              help="Which of the profile's transports [default: its first].")
@click.pass_obj
def check(boards_dir: Path | None, profile: str, wanted: str | None) -> None:
    """Reach the board PROFILE (a name, or a .toml file) and report its arch, Python, free disk and
    memory, the TFLite interpreter it has, whether an Edge TPU answers and what its power meter
    reads; a figure that differs from the profile is marked."""
    board = find_board(profile, boards_dir)
    transport = open_transport(board, wanted)  # type: ignore[arg-type]
    where = describe(board.transport(wanted))  # type: ignore[arg-type]
    try:
        lines = (check_link(board, where, transport) if isinstance(transport, SerialTransport)
                 else report(board, where, check_board(transport)))
        for line in lines:
            click.echo(line)
        click.echo(f"{'meter':<{WIDTH}}  {meter_line(board, transport)}")
    except TransportError as exc:
        if board.spec.emulated:
            raise TransportError(f"{exc} (an emulated board: `orbitlite hil emulate up` starts it)") from None
        raise
    finally:
        transport.close()


def meter_line(board: Board, transport: Transport) -> str:
    """The board's meter and one reading of it; a modelled one is only described."""
    spec, watts = board.spec, board.energy()
    if isinstance(spec.meter, ModelledSpec):
        of = f" (onboard's figures of {spec.watts_of})" if spec.watts_of else ""
        return f"none: power modelled from idle {watts.idle_watts:g} W and busy {watts.busy_watts:g} W{of}"
    meter = open_meter(board, transport)
    try:
        r = meter.read()
    finally:
        meter.close()
    return f"{meter.name}: {r.volts:.3f} V, {r.amps:.3f} A, {r.watts:.3f} W now"
