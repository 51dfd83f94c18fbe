"""`orbitlite`: the one console command. Each subcommand group is imported only when it is used,
so the board never imports the ground toolchain (or TensorFlow) to run `orbitlite onboard`."""

from __future__ import annotations

import importlib

import click

from onboard.errors import OrbitliteError

# name -> "module:attribute"
SUBCOMMANDS = {
    "demo": "ground.cli.demo:demo",
    "ground": "ground.cli.ground:ground",
    "onboard": "onboard.cli:onboard",
    "downlink": "ground.cli.downlink:downlink",
    "hil": "hil.cli:hil",
}
GROUND_MODULES = {"tensorflow", "tf_keras", "tensorflow_model_optimization", "matplotlib", "spyndex", "sgp4",
                  "global_land_mask", "skyfield", "skyfield_data"}


class LazyGroup(click.Group):
    """Loads subcommands on demand, and turns the project's errors into one line and exit 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module, attr = SUBCOMMANDS[name].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name in GROUND_MODULES:
                raise click.ClickException(_needs_ground(exc.name)) from None
            raise

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OrbitliteError as exc:
            raise click.ClickException(str(exc)) from None
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), exc.ctx) from None
        except ModuleNotFoundError as exc:
            if exc.name in GROUND_MODULES:
                raise click.ClickException(_needs_ground(exc.name)) from None
            raise


class OneLineUsageError(click.UsageError):
    """A mistake in the command line, said in one line like every other error, with where to
    look (click's own prints the usage and a hint on two more)."""

    def show(self, file=None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{hint}", err=True, file=file)


def _needs_ground(module: str) -> str:
    return f"this command needs the ground toolchain ({module} is not installed): pip install 'orbitlite[ground]'"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="orbitlite")
def cli() -> None:
    """orbitlite: neural networks on board Earth-observation satellites.

    Train and compress land-cover classifiers on the ground, run them tile by tile on the
    payload computer, and see what reaches the ground."""


def main() -> None:
    cli()
