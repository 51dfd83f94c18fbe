"""`orbitlite hil deploy`, `orbitlite hil rollback` and `orbitlite hil bundle`."""

from __future__ import annotations

from pathlib import Path

import click

from hil.boards.cli import boards_dir_option
from hil.boards.drivers import open_command_transport
from hil.boards.profile import find_board
from hil.deploy.deploy import deploy as deploy_bundle, make_bundle, rollback as roll_back
from onboard.schema import FiniteFloat
from onboard.service.supervisor import DEFAULT_TRIAL_S, MAX_TRIAL_S

board_option = click.option("--board", "board_name", required=True, help="The board's profile (`orbitlite hil boards`).")
wheels_option = click.option("--wheels", "wheelhouse", type=click.Path(path_type=Path, exists=True, file_okay=False),
                             help="A folder of wheels to take the runtime's from, instead of the package index "
                                  "(a ground station without internet).")
trial_option = click.option("--trial", "trial_s", default=DEFAULT_TRIAL_S, show_default=True,
                            type=FiniteFloat(0, MAX_TRIAL_S, min_open=True),
                            help="Seconds the service has to come up on the new slot before the board goes back.")


@click.command()
@board_option
@boards_dir_option
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--config", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The service's configuration (JSON, as `onboard serve` reads it; paths relative to the slot) "
                   "[default: the models as a ladder, spool and store in the payload's root].")
@wheels_option
@trial_option
def deploy(board_name: str, boards_dir: Path | None, sources: tuple[Path, ...], config: Path | None,
           wheelhouse: Path | None, trial_s: float) -> None:
    """Deploy SOURCES to a board: a bundle folder (`orbitlite hil bundle`), or models (.tflite,
    manifests beside them) bundled here with the runtime's wheels for the board. Steps: transfer
    (resumable; every hash checked on the board), install into the inactive slot's own runtime,
    self-test there, switch to it on trial. Any failure leaves the running slot running and says
    which step failed; the same bundle twice does nothing.

    \b
    Example:
      orbitlite hil deploy --board rpi-emulated cnn-s.tflite
    """
    board = find_board(board_name, boards_dir)
    transport = open_command_transport(board)
    try:
        done = deploy_bundle(board, transport, sources, config=config, wheelhouse=wheelhouse, trial_s=trial_s,
                             report=click.echo)
    finally:
        transport.close()
    if not done.unchanged:
        click.echo(f"deployed bundle {done.bundle} to {board.name}: slot {done.slot} active "
                   f"(was {done.previous or 'none'})")


@click.command()
@board_option
@boards_dir_option
@trial_option
def rollback(board_name: str, boards_dir: Path | None, trial_s: float) -> None:
    """Return a board to its other slot: self-test it, then switch to it on trial."""
    board = find_board(board_name, boards_dir)
    transport = open_command_transport(board)
    try:
        done = roll_back(board, transport, trial_s=trial_s, report=click.echo)
    finally:
        transport.close()
    click.echo(f"rolled {board.name} back: slot {done.slot} active (was {done.previous})")


@click.command()
@board_option
@boards_dir_option
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The bundle's folder (new, or empty).")
@click.option("--config", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The service's configuration [default: the models as a ladder].")
@wheels_option
def bundle(board_name: str, boards_dir: Path | None, models: tuple[Path, ...], out: Path, config: Path | None,
           wheelhouse: Path | None) -> None:
    """Build a bundle of MODELS for a board, to deploy later (`orbitlite hil deploy --board B OUT`):
    the runtime's wheels for the board's platform (orbitlite's built on the board the first time),
    the models with manifests and self-test vectors, the service configuration, and bundle.json."""
    board = find_board(board_name, boards_dir)
    transport = open_command_transport(board)
    try:
        body = make_bundle(board, transport, models, out, config=config, wheelhouse=wheelhouse, report=click.echo)
    finally:
        transport.close()
    size = sum(f.size for f in body.files.values())
    click.echo(f"bundle {body.id} for {body.runtime.arch if body.runtime else '?'}: {len(body.files)} files, "
               f"{size / 1e6:.1f} MB -> {out}")
