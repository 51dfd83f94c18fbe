"""`orbitlite hil emulate up|down|status`: the emulated flight-like board `rpi-emulated`."""

from __future__ import annotations

import click

from hil.emulated import board
from hil.emulated.board import EMULATION, HOST, NAME, PORT, USER, Files

_TIME = "%Y-%m-%d %H:%M:%S UTC"


@click.group()
def emulate() -> None:
    """The emulated flight-like board `rpi-emulated`: a Raspberry Pi's Debian bookworm arm64
    userland run here through qemu-user, answering SSH as root@127.0.0.1 port 2299. An emulation:
    it checks correctness with arm64 binaries; its timings are not a Pi's. Needs root. Kept in
    $ORBITLITE_CACHE/rpi-emulated (default ~/.cache/orbitlite/rpi-emulated).

    \b
    Example:
      orbitlite hil emulate up       # builds once (~3 min), then starts in a second
      orbitlite hil emulate status
      orbitlite hil emulate down
    """


@emulate.command()
def up() -> None:
    """Build the board (once) and start its sshd; wait until it answers over SSH."""
    files = Files.default()
    click.echo(f"{NAME}: {EMULATION}")
    result = board.up(files, say=lambda line: click.echo(line, err=True))
    m, s = result.marker, result.state
    if result.built_now:
        click.echo(f"built in {m.build_s:.0f} s ({m.size_bytes / 1e9:.2f} GB): {files.rootfs}")
    if result.was_running:
        click.echo(f"already running (pid {s.pid}) since {s.started_at:{_TIME}}")
    else:
        click.echo(f"started in {s.start_s:.1f} s: {USER}@{HOST} port {PORT} answers uname -m: {s.arch}")
    click.echo(f"ssh: {' '.join(files.ssh()[:-2])}")


@emulate.command()
def down() -> None:
    """Stop the board: its sshd and every process in it; nothing stays mounted."""
    files = Files.default()
    click.echo(f"{NAME}: stopped" if board.down(files) else f"{NAME}: not running")


@emulate.command()
def status() -> None:
    """Whether the board is built and running, where it answers, its arch, when it was built and its size."""
    st = board.status(Files.default())
    files, m, s = st.files, st.marker, st.state
    click.echo(f"{NAME}: {EMULATION}")
    if m is not None:
        built = f"yes, {m.built_at:{_TIME}} in {m.build_s:.0f} s, {m.size_bytes / 1e9:.2f} GB ({files.rootfs})"
    elif st.half_built:
        built = f"no: {files.rootfs} is a half build or another recipe's; `up` builds it again"
    else:
        built = "no; `orbitlite hil emulate up` builds it (~3 min)"
    click.echo(f"built:    {built}")
    if s is not None:
        started = f" (started in {s.start_s:.1f} s)" if s.start_s is not None else " (starting)"
        click.echo(f"running:  yes, pid {s.pid} since {s.started_at:{_TIME}}{started}")
    else:
        click.echo("running:  no")
    click.echo(f"ssh:      {USER}@{HOST} port {PORT}, key {files.key}")
    click.echo(f"arch:     {st.answers or '-'}" + (" (uname -m over SSH)" if st.answers else
                                                    (" (not answering)" if s is not None else " (not running)")))
