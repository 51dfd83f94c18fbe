"""The serial transport: the payload's authenticated link (DESIGN.md contract 3), where
`orbitlite onboard serve` answers. It carries files both ways with the link's resumable,
checksummed transfers (hil/link/transfer.py), and the payload's own commands (`call`: ping,
status, run_scene, switch_slot, ...). There is no shell at the other end, by design: `run` of an
arbitrary command is refused with a TransportError that says so; `bench` is the payload's own
command, whose result is downloaded once it answers.

Remote names are the link's: `put` writes into an upload area of the payload (`files/NAME`, the
inactive slot's `slots/a|b/NAME`, the spool's), installed only whole and verified; `get` reads
`file/PATH` under the payload's root or `product/ID` from its store (a bare PATH means
`file/PATH`), into a `.part` file renamed once whole. An interrupted transfer of the same file
resumes where it stopped."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from hil.boards.profile import SerialSpec
from hil.boards.transport import Completed
from hil.errors import TransportError
from hil.link import transfer
from hil.link.client import Client
from onboard.errors import OrbitliteError
from onboard.inference.bench import BenchArgs
from onboard.link.commands import BENCH_RESULT, FILES
from onboard.link.port import open_port
from onboard.link.sealing import read_key
from onboard.schema import to_builtins

# What the ground waits for a bench beyond its bound, so that the payload's own stop at that bound
# (onboard/link/commands.py), which says why, comes through first.
ANSWER_SECONDS = 30.0


class SerialTransport:
    """A payload over its serial link; the port is opened at the first use."""

    name = "serial"
    python = "python3"
    runtime = ()  # the payload runs its own: `bench` is a link command
    work = FILES  # the payload's upload area for files to work with

    def __init__(self, spec: SerialSpec) -> None:
        self.spec = spec
        self.where = f"serial {spec.port}"
        self._client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            try:
                key = read_key(Path(self.spec.key_file))
                self._client = Client(open_port(self.spec.port, self.spec.baud), key, timeout=self.spec.timeout,
                                      retries=self.spec.retries)
            except OrbitliteError as exc:
                raise TransportError(f"{self.where}: {exc}") from None
        return self._client

    def call(self, command: str, **args: Any) -> Any:
        """One of the payload's link commands, and its result."""
        try:
            return self.client().call(command, **args)
        except TransportError:
            raise
        except OrbitliteError as exc:
            raise TransportError(f"{self.where}: {exc}") from None

    def run(self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None) -> Completed:
        raise TransportError(f"{self.where} runs no command on the board ({argv[0] if argv else 'nothing'} "
                             f"asked): the link carries files and the payload's own commands; use an ssh or "
                             f"local transport to run commands")

    def bench(self, args: BenchArgs, *, timeout: float) -> bytes:
        self.call("bench", run_timeout=timeout + ANSWER_SECONDS, **to_builtins(args))
        with tempfile.TemporaryDirectory(prefix="orbitlite-bench-") as folder:
            local = Path(folder) / "result.json"
            self.get(BENCH_RESULT, local)
            return local.read_bytes()

    def put(self, local: Path, remote: str) -> None:
        client = self.client()
        try:
            transfer.upload(client, Path(local), remote)
        except OrbitliteError as exc:
            raise TransportError(f"{self.where}: putting {local} to {remote}: {exc}") from None

    def get(self, remote: str, local: Path) -> None:
        source = remote if remote.startswith(("file/", "product/")) else f"file/{remote}"
        client = self.client()
        try:
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            transfer.download(client, source, Path(local))
        except OrbitliteError as exc:
            raise TransportError(f"{self.where}: getting {source} to {local}: {exc}") from None
        except OSError as exc:
            raise TransportError(f"{self.where}: cannot write {local}: {exc.strerror}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.port.close()
            self._client = None
