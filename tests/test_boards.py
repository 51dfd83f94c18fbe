"""Board profiles, `orbitlite hil boards` and `hil boards check`, and the SSH transport through a
real OpenSSH server on loopback (tests/sshd.py)."""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import pytest

from hil.boards.drivers import open_transport
from hil.boards.profile import SHIPPED, SshSpec, all_boards, cache_root, find_board, load_board
from hil.errors import BoardError, TransportError
from onboard.run.boards import BOARDS, BoardProfile
from tests.conftest import assert_one_line_error, orbitlite
from tests.sshd import free_port, sshd  # noqa: F401  (sshd: the fixture)

SHIPPED_NAMES = ["coral-dev-board", "local", "rpi-4b", "rpi-5", "rpi-emulated", "rpi-zero-2w"]
LOCAL = (SHIPPED / "local.toml").read_text()


def _env(boards_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ORBITLITE_BOARDS"}
    if boards_dir is not None:
        env["ORBITLITE_BOARDS"] = str(boards_dir)
    return env


def test_every_shipped_profile_loads():
    boards = {b.name: b for b in all_boards()}
    assert sorted(boards) == SHIPPED_NAMES
    assert all(b.origin == "shipped" and not b.overrides for b in boards.values())
    assert boards["rpi-4b"].energy() == BoardProfile("rpi-4b", 2.7, 6.4)
    assert boards["rpi-5"].energy().busy_watts == 11.0 and boards["rpi-zero-2w"].energy().idle_watts == 0.6
    assert boards["coral-dev-board"].spec.accelerator == "edgetpu-pcie"
    emulated = boards["rpi-emulated"]
    assert emulated.spec.emulated and "not a Raspberry Pi's" in emulated.spec.note
    ssh = emulated.transport()
    assert isinstance(ssh, SshSpec) and (ssh.host, ssh.port, ssh.user) == ("127.0.0.1", 2299, "root")
    assert ssh.key == str(cache_root() / "rpi-emulated" / "id_ed25519")
    assert boards["rpi-4b"].transport_kinds() == ["ssh", "serial"]
    assert boards["local"].energy() == BoardProfile("local", 10.0, 35.0)  # its own figures: no board of BOARDS


def test_the_boards_watts_are_onboards():
    """One source for a board's watts: every shipped profile of a board the runtime knows takes
    its figures from onboard's BOARDS (those of `onboard run --board` and the serve config), and
    the emulated board a Pi 4's."""
    boards = {b.name: b for b in all_boards()}
    for name, figures in BOARDS.items():
        assert boards[name].spec.watts_of == name and boards[name].energy() == figures
        assert boards[name].spec.idle_watts is None and boards[name].spec.busy_watts is None
    emulated = boards["rpi-emulated"].energy()
    assert (emulated.idle_watts, emulated.busy_watts) == (BOARDS["rpi-4b"].idle_watts, BOARDS["rpi-4b"].busy_watts)


def test_paths_in_a_profile_are_relative_to_it_or_home(tmp_path, monkeypatch):
    (tmp_path / "b.toml").write_text(LOCAL.replace('name = "local"', 'name = "b"').replace(
        'workdir = "$ORBITLITE_CACHE/local-board"', 'workdir = "boards/b"'))
    assert load_board(tmp_path / "b.toml").transport().workdir == str(tmp_path / "boards/b")
    monkeypatch.delenv("ORBITLITE_CACHE", raising=False)
    assert find_board("local").transport().workdir == str(Path.home() / ".cache/orbitlite/local-board")
    monkeypatch.setenv("ORBITLITE_CACHE", str(tmp_path / "cache"))  # the emulated board's keys follow the cache
    assert find_board("local").transport().workdir == str(tmp_path / "cache/local-board")
    assert find_board("rpi-emulated").transport().key == str(tmp_path / "cache/rpi-emulated/id_ed25519")


@pytest.mark.parametrize("change, fragments", [
    (("cores = 2\n", ""), ["cores: missing"]),
    (("cores = 2", 'cores = "two"'), ["cores: Expected `int`, got `str`"]),
    (('arch = "x86_64"', 'arch = "riscv64"'), ["arch: Invalid enum value 'riscv64'"]),
    (("cores = 2", "cores = 2\ncolour = 3"), ["colour: unknown key (known: accelerator, arch,"]),
    (('kind = "local"', 'kind = "telnet"'), ["transports[0].kind: Invalid value 'telnet'"]),
    (("workdir = ", "folder = "), ["transports[0].folder: unknown key"]),
    (('kind = "modelled"', 'kind = "ina219"\naddress = 300'), ["meter.address: Expected `int` <= 119"]),
    (("busy_watts = 35.0", "busy_watts = 1.0"), ["busy_watts 1 is below idle_watts 10"]),
    (("busy_watts = 35.0\n", ""), ["idle_watts and busy_watts: give both, or watts_of", "rpi-4b"]),
    (("busy_watts = 35.0", 'busy_watts = 35.0\nwatts_of = "rpi-4b"'), ["give watts_of or idle_watts"]),
    (("idle_watts = 10.0\nbusy_watts = 35.0", 'watts_of = "rpi-4"'),
     ["watts_of 'rpi-4' is not a board of onboard's BOARDS: rpi-zero-2w, rpi-4b"]),
    (('name = "local"', 'name = "other"'), ["name is 'other', the file's name says 'local'"]),
    (("cores = 2", "cores = 2 2"), ["not valid TOML"]),
], ids=["missing", "type", "arch", "unknown", "transport", "transport-key", "meter", "watts", "watts-missing",
        "watts-twice", "watts-of", "name", "toml"])
def test_a_bad_profile_is_one_line_naming_the_key(tmp_path, change, fragments):
    old, new = change
    assert old in LOCAL
    (tmp_path / "local.toml").write_text(LOCAL.replace(old, new))
    with pytest.raises(BoardError) as info:
        load_board(tmp_path / "local.toml")
    assert str(info.value).startswith(f"board profile {tmp_path / 'local.toml'}: ")
    for fragment in fragments:
        assert fragment in str(info.value)
    # through the real CLI: one line, non-zero exit
    assert_one_line_error(orbitlite("hil", "boards", "check", "local", env=_env(tmp_path)), *fragments)


def test_hil_boards_lists_shipped_and_user_profiles(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "rpi-5.toml").write_text(LOCAL.replace('name = "local"', 'name = "rpi-5"'))
    (mine / "bench-pi.toml").write_text(LOCAL.replace('name = "local"', 'name = "bench-pi"').replace(
        'arch = "x86_64"', 'arch = "armv7l"'))
    shipped = orbitlite("hil", "boards", env=_env())
    assert shipped.returncode == 0, shipped.stderr
    lines = shipped.stdout.splitlines()
    assert lines[0].split() == ["name", "arch", "cores", "accelerator", "transports", "from"]
    assert [line.split()[0] for line in lines[1:]] == SHIPPED_NAMES
    assert "ssh, serial" in next(line for line in lines if line.startswith("rpi-4b"))
    assert "[emulated]" in next(line for line in lines if line.startswith("rpi-emulated"))
    for listing in (orbitlite("hil", "boards", env=_env(mine)), orbitlite("hil", "boards", "--boards-dir", str(mine))):
        assert listing.returncode == 0, listing.stderr
        rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
        assert sorted(rows) == sorted([*SHIPPED_NAMES, "bench-pi"])
        assert f"yours: {mine / 'rpi-5.toml'} (overrides the shipped one)" in rows["rpi-5"]
        assert "x86_64" in rows["rpi-5"] and "armv7l" in rows["bench-pi"] and "overrides" not in rows["bench-pi"]
    assert find_board("rpi-5", mine).overrides and find_board("rpi-5", mine).spec.arch == "x86_64"
    (mine / "broken.toml").write_text("name = 'broken'\n")
    assert_one_line_error(orbitlite("hil", "boards", env=_env(mine)), "broken.toml: arch: missing")


def test_unknown_profile_and_folder(tmp_path):
    assert_one_line_error(orbitlite("hil", "boards", "check", "rpi-9", env=_env()), "no board profile 'rpi-9'",
                          "rpi-emulated")
    assert_one_line_error(orbitlite("hil", "boards", env=_env(tmp_path / "absent")), "is not a directory")


def test_hil_boards_check_local():
    result = orbitlite("hil", "boards", "check", "local", env=_env())
    assert result.returncode == 0, result.stderr
    lines = _fields(result.stdout)
    assert lines["board"].startswith(f"local (shipped profile {SHIPPED / 'local.toml'})")
    assert lines["arch"] == platform.machine() and lines["edge tpu"] == "no"
    assert lines["python"] == f"{platform.python_version()} ({sys.executable})"  # the runtime's own Python
    assert re.fullmatch(r"[\d.]+ GB of [\d.]+ GB in .*local-board", lines["disk free"])
    assert re.fullmatch(r"[\d.]+ GB available of [\d.]+ GB.*", lines["memory"])
    assert lines["interpreter"].startswith(("ai_edge_litert ", "tflite_runtime "))  # the runtime's base install


def _fields(out: str) -> dict[str, str]:
    """`hil boards check`'s lines (label, two spaces or more, value) as a dict."""
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())


def test_check_through_ssh_reports_the_board(sshd, tmp_path):
    (tmp_path / "lab.toml").write_text(sshd.profile("lab"))
    result = orbitlite("hil", "boards", "check", str(tmp_path / "lab.toml"))
    assert result.returncode == 0, result.stderr
    lines = _fields(result.stdout)
    assert lines["reached"] == f"through ssh {sshd.user}@127.0.0.1:{sshd.port}"
    assert lines["arch"] == platform.machine() and lines["edge tpu"] == "no"
    assert re.fullmatch(r"3\.\d+\.\d+ \(/.*python3.*\)", lines["python"])  # the python3 an SSH login finds
    assert lines["disk free"].endswith(f"in {sshd.folder / 'board'}")


def test_ssh_put_and_get_round_trip(sshd, tmp_path):
    (tmp_path / "lab.toml").write_text(sshd.profile("lab"))
    transport = open_transport(load_board(tmp_path / "lab.toml"))
    try:
        data = os.urandom(300_000)
        (tmp_path / "out.bin").write_bytes(data)
        transport.put(tmp_path / "out.bin", "deep/folder/with space.bin")
        on_board = sshd.folder / "board/deep/folder/with space.bin"
        assert on_board.read_bytes() == data and not on_board.with_name("with space.bin.part").exists()
        transport.get("deep/folder/with space.bin", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == data
        done = transport.run(["sh", "-c", 'cat "$1"; echo " $0"', "x y", "deep/folder/with space.bin"],
                             timeout=30)
        assert done.returncode == 0 and done.stdout == data + b" x y\n"
        assert transport.run(["cat"], timeout=30, stdin=b"through stdin").stdout == b"through stdin"
        assert transport.run(["sh", "-c", "exit 3"], timeout=30).returncode == 3
        with pytest.raises(TransportError, match="No such file"):
            transport.get("absent.bin", tmp_path / "absent.bin")
        assert not (tmp_path / "absent.bin").exists() and not (tmp_path / "absent.bin.part").exists()
        with pytest.raises(TransportError, match="no-such-program: no such program on the board"):
            transport.run(["no-such-program"], timeout=30)
    finally:
        transport.close()


@pytest.mark.parametrize("what", ["wrong key", "unreachable port", "missing key"])
def test_ssh_refusals_are_one_line(sshd, tmp_path, what):
    profile = {"wrong key": sshd.profile("lab", key=sshd.other_key),
               "unreachable port": sshd.profile("lab", port=free_port()),
               "missing key": sshd.profile("lab", key=tmp_path / "no-key")}[what]
    expected = {"wrong key": "Permission denied (publickey)", "unreachable port": "Connection refused",
                "missing key": "is not a file"}[what]
    (tmp_path / "lab.toml").write_text(profile)
    line = assert_one_line_error(orbitlite("hil", "boards", "check", str(tmp_path / "lab.toml")), expected)
    assert line.startswith(f"Error: ssh {sshd.user}@127.0.0.1:")


def test_an_emulated_board_that_is_down_says_how_to_start_it(sshd, tmp_path):
    profile = sshd.profile("lab", port=free_port()).replace('cpu = "test"', 'cpu = "test"\nemulated = true')
    (tmp_path / "lab.toml").write_text(profile)
    assert_one_line_error(orbitlite("hil", "boards", "check", str(tmp_path / "lab.toml")), "Connection refused",
                          "`orbitlite hil emulate up` starts it")
