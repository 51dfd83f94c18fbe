"""Board profiles: what a board is (its arch, CPU, memory, Python, accelerator and draw), how the
harness reaches it (its transports) and how its power is read (its meter). In labgrid's terms a
profile describes the resource; the transports (`hil/boards/transport.py`, `ssh.py`, `serial.py`)
and the meters (`hil/boards/meters/`) are the drivers it names.

A profile is a TOML file checked against `BoardFile`: a key it does not know, a missing one, a
wrong type or value is refused in one line naming the file and the key. The file's name is the
board's name (`rpi-4b.toml` holds `name = "rpi-4b"`). Paths in it (an SSH key, a known-hosts file,
a link key file, the local transport's folder) may start with `~`; a relative one is relative to
the profile's folder.

A board's idle and busy watts have one source, onboard's `BOARDS` (onboard/run/boards.py), which
the flight runtime's budgets use: a profile of such a board names its figures there with
`watts_of = "rpi-4b"`, and only a board `BOARDS` lacks, or one with figures of its own (measured
on yours), gives `idle_watts` and `busy_watts`.

Profiles ship with the package (`hil/boards/profiles/*.toml`); a user's own live in a folder given
by `--boards-dir` or the environment variable ORBITLITE_BOARDS, and one of the same name overrides
the shipped one.

    name = "rpi-4b"
    arch = "aarch64"
    cpu = "Cortex-A72"
    cores = 4
    ram_mb = 4096
    python = "3.11"
    watts_of = "rpi-4b"

    [[transports]]
    kind = "ssh"
    host = "raspberrypi.local"
    user = "pi"
    key = "~/.ssh/id_ed25519"

    [meter]
    kind = "modelled"
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta

from hil.errors import BoardError
from onboard.run.boards import BOARDS, BoardProfile
from onboard.schema import FileName, Name, NonNegative, PathText, Positive, Schema, Text, decode, read_bounded

MAX_PROFILE_BYTES = 64 * 2**10  # a profile is a few dozen lines; anything larger is refused unread
SHIPPED = Path(__file__).with_name("profiles")
ENV_VAR = "ORBITLITE_BOARDS"

Port = Annotated[int, Meta(ge=1, le=65535)]
Seconds = Annotated[int, Meta(ge=1, le=3600)]
I2cAddress = Annotated[int, Meta(ge=0x03, le=0x77)]  # the 7-bit addresses a device may take
Host = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:\[\]%-]+\Z")]
User = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*\Z")]


# Transports: the ways to the board, tried in the order the profile lists them.
class SshSpec(Schema, tag_field="kind", tag="ssh"):
    """The board over SSH, through the OpenSSH client (hil/boards/ssh.py)."""

    host: Host
    user: User
    key: PathText  # the private key, ~ or relative to the profile
    port: Port = 22
    # StrictHostKeyChecking: `accept-new` records a new board's host key and refuses a changed one
    host_key_check: Literal["accept-new", "yes", "no"] = "accept-new"
    known_hosts: PathText = "$ORBITLITE_CACHE/known_hosts"  # the harness's own, not the user's
    connect_timeout: Seconds = 10
    control_persist: Seconds = 60  # s the shared connection outlives its last use
    workdir: PathText = "orbitlite"  # the harness's folder on the board (relative: to the user's home)


class SerialSpec(Schema, tag_field="kind", tag="serial"):
    """The payload's authenticated serial link (hil/boards/serial.py): files and link commands."""

    port: PathText  # a device (/dev/ttyUSB0) or a pyserial URL
    key_file: PathText  # the link's pre-shared key (orbitlite hil keygen)
    baud: Annotated[int, Meta(ge=50, le=10_000_000)] = 115200
    timeout: Annotated[float, Meta(ge=0.01, le=60.0)] = 0.5  # s beyond the wire time before a retransmission
    retries: Annotated[int, Meta(ge=0, le=1000)] = 10


class LocalSpec(Schema, tag_field="kind", tag="local"):
    """This machine itself (hil/boards/transport.py)."""

    workdir: PathText = "$ORBITLITE_CACHE/local-board"


TransportSpec = Union[SshSpec, SerialSpec, LocalSpec]
TransportKind = Literal["ssh", "serial", "local"]


# Power meters (hil/boards/meters/): one kind per file there.
class ModelledSpec(Schema, tag_field="kind", tag="modelled"):
    """No meter: power modelled from the profile's idle and busy watts and the board's busy time."""


class Ina219Spec(Schema, tag_field="kind", tag="ina219"):
    """A TI INA219 on the board's I2C bus, across a shunt in the board's supply."""

    bus: Annotated[int, Meta(ge=0, le=255)] = 1  # /dev/i2c-N
    address: I2cAddress = 0x40
    shunt_ohms: Annotated[float, Meta(gt=0.0, le=100.0)] = 0.1


class Ina260Spec(Schema, tag_field="kind", tag="ina260"):
    """A TI INA260 (its 2 mOhm shunt built in) on the board's I2C bus."""

    bus: Annotated[int, Meta(ge=0, le=255)] = 1
    address: I2cAddress = 0x40


class ScpiSpec(Schema, tag_field="kind", tag="scpi"):
    """A bench supply feeding the board, read back over SCPI through pyvisa."""

    resource: Name  # a VISA resource: TCPIP::10.0.0.5::INSTR, ASRL/dev/ttyUSB1::INSTR, USB0::...
    backend: Name = "@py"  # pyvisa-py; `FILE.yaml@sim` is pyvisa-sim's simulated instrument (FILE relative)
    volts_query: Name = "MEASure:VOLTage?"
    amps_query: Name = "MEASure:CURRent?"
    timeout_ms: Annotated[int, Meta(ge=10, le=60_000)] = 2000


MeterSpec = Union[ModelledSpec, Ina219Spec, Ina260Spec, ScpiSpec]


class BoardFile(Schema, kw_only=True):
    """A board profile as its TOML file holds it."""

    name: FileName
    arch: Literal["aarch64", "armv7l", "x86_64"]  # as `uname -m` says it
    cpu: Name  # the core's model
    cores: Annotated[int, Meta(ge=1, le=1024)]
    ram_mb: Annotated[int, Meta(ge=1, le=2**31)]
    python: Annotated[str, Meta(pattern=r"^3\.\d{1,2}\Z")]  # the board's Python, major.minor
    accelerator: Literal["none", "edgetpu-usb", "edgetpu-pcie"] = "none"
    # whole-board draw at its supply input, idle and with every core busy (as onboard's BoardProfile);
    # read them through Board.energy(), which takes BOARDS[watts_of]'s when the profile names one
    idle_watts: NonNegative | None = None
    busy_watts: Positive | None = None
    watts_of: Name | None = None  # a board of onboard's BOARDS whose figures this one has
    emulated: bool = False  # an emulation of the board: its timings are not the board's
    note: Text = ""
    transports: Annotated[tuple[TransportSpec, ...], Meta(min_length=1, max_length=8)]
    meter: MeterSpec = ModelledSpec()

    def __post_init__(self) -> None:
        given = (self.idle_watts is not None) + (self.busy_watts is not None)
        if self.watts_of is not None and given:
            raise ValueError("give watts_of or idle_watts and busy_watts, not both")
        if self.watts_of is not None and self.watts_of not in BOARDS:
            raise ValueError(f"watts_of {self.watts_of!r} is not a board of onboard's BOARDS: {', '.join(BOARDS)}")
        if self.watts_of is None and given < 2:
            raise ValueError(f"idle_watts and busy_watts: give both, or watts_of (a board of onboard's BOARDS: "
                             f"{', '.join(BOARDS)})")
        if self.watts_of is None and self.busy_watts < self.idle_watts:
            raise ValueError(f"busy_watts {self.busy_watts:g} is below idle_watts {self.idle_watts:g}")
        kinds = [kind(t) for t in self.transports]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"transports names a kind twice: {', '.join(kinds)}")


@dataclass(frozen=True)
class Board:
    """A board profile read from its file, its paths resolved."""

    spec: BoardFile
    path: Path
    origin: Literal["shipped", "user"]
    overrides: bool = False  # a user's profile that takes the place of a shipped one of its name

    @property
    def name(self) -> str:
        return self.spec.name

    def transport_kinds(self) -> list[str]:
        return [kind(t) for t in self.spec.transports]

    def transport(self, wanted: TransportKind | None = None) -> TransportSpec:
        """The profile's first transport, or the one of kind `wanted`."""
        for spec in self.spec.transports:
            if wanted is None or kind(spec) == wanted:
                return spec
        raise BoardError(f"board {self.name} has no {wanted} transport (it has: {', '.join(self.transport_kinds())})")

    def energy(self) -> BoardProfile:
        """The board's idle and busy draw, as the on-board budgets take it: onboard's figures of
        the board its profile names (`watts_of`), else the profile's own."""
        spec = self.spec
        if spec.watts_of is not None:
            figures = BOARDS[spec.watts_of]
            return BoardProfile(self.name, figures.idle_watts, figures.busy_watts)
        return BoardProfile(self.name, spec.idle_watts, spec.busy_watts)  # type: ignore[arg-type]


def kind(spec: TransportSpec | MeterSpec) -> str:
    """The kind of a transport or meter (its tag in the profile: `ssh`, `ina219`, ...)."""
    return type(spec).__struct_config__.tag  # type: ignore[return-value]


def describe(spec: TransportSpec) -> str:
    """A transport as one says where it goes: `ssh pi@rpi.local:22`, `serial /dev/ttyUSB0 at 115200 baud`."""
    if isinstance(spec, SshSpec):
        return f"ssh {spec.user}@{spec.host}:{spec.port}"
    if isinstance(spec, SerialSpec):
        return f"serial {spec.port} at {spec.baud} baud"
    return f"local, in {spec.workdir}"


CACHE = "$ORBITLITE_CACHE"  # how a profile's path names the harness's cache (cache_root)


def cache_root() -> Path:
    """Where orbitlite keeps what it builds and caches: $ORBITLITE_CACHE, else ~/.cache/orbitlite."""
    return Path(os.environ.get("ORBITLITE_CACHE") or Path.home() / ".cache" / "orbitlite")


def resolve_path(text: str, base: Path) -> Path:
    """A path as a profile writes it: a leading `$ORBITLITE_CACHE` is the cache (cache_root), `~`
    is expanded, and a relative one lies under `base`."""
    if text == CACHE or text.startswith(CACHE + "/"):
        return cache_root() / text[len(CACHE) + 1:]
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def load_board(path: Path, origin: Literal["shipped", "user"] = "user", overrides: bool = False) -> Board:
    """The profile in the TOML file `path`; BoardError in one line naming the file and the key."""
    path = Path(path)
    source = f"board profile {path}"
    data = read_bounded(path, MAX_PROFILE_BYTES, error=BoardError, what="board profile")
    spec = decode(data, BoardFile, source=source, error=BoardError, format="toml")
    if spec.name != path.stem:
        raise BoardError(f"{source}: name is {spec.name!r}, the file's name says {path.stem!r}: they must agree")
    base = path.parent
    transports = []
    for t in spec.transports:
        if isinstance(t, SshSpec):
            t = msgspec.structs.replace(t, key=str(resolve_path(t.key, base)),
                                        known_hosts=str(resolve_path(t.known_hosts, base)))
        elif isinstance(t, SerialSpec):
            t = msgspec.structs.replace(t, key_file=str(resolve_path(t.key_file, base)))
        elif isinstance(t, LocalSpec):
            t = msgspec.structs.replace(t, workdir=str(resolve_path(t.workdir, base)))
        transports.append(t)
    meter = spec.meter
    if isinstance(meter, ScpiSpec) and meter.backend.endswith("@sim") and meter.backend != "@sim":
        meter = msgspec.structs.replace(meter, backend=f"{resolve_path(meter.backend[:-4], base)}@sim")
    spec = msgspec.structs.replace(spec, transports=tuple(transports), meter=meter)
    return Board(spec, path, origin, overrides)


def user_dir(boards_dir: Path | None) -> Path | None:
    """The folder of the user's profiles: `boards_dir`, else $ORBITLITE_BOARDS, else none."""
    if boards_dir is not None:
        return Path(boards_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else None


def board_files(boards_dir: Path | None = None) -> dict[str, tuple[Path, Literal["shipped", "user"], bool]]:
    """Name -> (file, origin, overrides a shipped one) of every profile, the user's over the shipped."""
    found: dict[str, tuple[Path, Literal["shipped", "user"], bool]] = {
        p.stem: (p, "shipped", False) for p in sorted(SHIPPED.glob("*.toml"))}
    folder = user_dir(boards_dir)
    if folder is not None:
        if not folder.is_dir():
            raise BoardError(f"the boards folder {folder} is not a directory")
        for p in sorted(folder.glob("*.toml")):
            found[p.stem] = (p, "user", p.stem in found)
    return dict(sorted(found.items()))


def all_boards(boards_dir: Path | None = None) -> list[Board]:
    """Every profile, shipped and the user's, by name; a bad one is an error naming it."""
    return [load_board(path, origin, overrides) for path, origin, overrides in board_files(boards_dir).values()]


def find_board(name: str, boards_dir: Path | None = None) -> Board:
    """The profile called `name` (the user's before the shipped), or in the file `name` if it is a
    path to a .toml file."""
    if name.endswith(".toml") and Path(name).is_file():
        return load_board(Path(name))
    files = board_files(boards_dir)
    if name not in files:
        where = " (and in your folder)" if user_dir(boards_dir) else f" (yours: --boards-dir or ${ENV_VAR})"
        raise BoardError(f"no board profile {name!r}; known{where}: {', '.join(files)}")
    return load_board(*files[name])
