"""`orbitlite hil emulate up|down|status`: the emulated arm64 board answers SSH with arm64
binaries, says what it is, stops without leaving a process or a mount behind, starts again from
its cache, refuses to run without root in one line, and never uses a half-built root filesystem.
The board is the pytest plugin's `emulated_board` (hil/pytest_plugin.py); what any board under
test must do, this one included, is tested in test_hil_board.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hil.emulated import build
from hil.emulated.board import Files
from hil.errors import BoardError
from tests.conftest import assert_one_line_error, orbitlite
from tests.emulated import on_board


def test_the_board_answers_ssh_as_aarch64(emulated_board):
    result = on_board(emulated_board, "uname", "-m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "aarch64"


def test_status_says_what_the_running_board_is(emulated_board):
    result = orbitlite("hil", "emulate", "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "an emulation" in lines[0] and "not a Pi's" in lines[0]
    fields = dict(line.split(":", 1) for line in lines[1:])
    assert fields["built"].strip().startswith("yes, ") and "GB" in fields["built"]
    assert fields["running"].strip().startswith("yes, pid ")
    assert "root@127.0.0.1 port 2299" in fields["ssh"] and str(emulated_board.key) in fields["ssh"]
    assert fields["arch"].split()[0] == "aarch64"


def test_the_boards_mounts_are_its_own(emulated_board):
    """The board's /proc, /sys and /dev mounts live in its namespace: the host sees none of them."""
    assert build.mounts_under(emulated_board.rootfs) == []
    result = on_board(emulated_board, "sh", "-c", "test -e /proc/self/status && test -d /sys/devices && echo ok")
    assert result.stdout.strip() == "ok", result.stderr


def test_down_ends_every_process_of_the_board_and_up_starts_it_again_from_the_cache(emulated_board):
    # a process the board runs on its own, as a service would, to be ended with it
    started = on_board(emulated_board, "sh", "-c", "nohup sleep 4242.5 >/dev/null 2>&1 &")
    assert started.returncode == 0, started.stderr
    assert _host_pids_running(b"4242.5")

    stopped = orbitlite("hil", "emulate", "down")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "rpi-emulated: stopped"
    assert not _host_pids_running(b"4242.5")
    assert build.mounts_under(emulated_board.rootfs) == []
    assert on_board(emulated_board, "true", timeout=30).returncode != 0
    status = orbitlite("hil", "emulate", "status")
    assert "running:  no" in status.stdout and "arch:     - (not running)" in status.stdout
    again = orbitlite("hil", "emulate", "down")
    assert again.returncode == 0 and again.stdout.strip() == "rpi-emulated: not running"

    restarted = orbitlite("hil", "emulate", "up")
    assert restarted.returncode == 0, restarted.stderr
    assert "built in" not in restarted.stdout  # from the cache
    assert "answers uname -m: aarch64" in restarted.stdout
    assert on_board(emulated_board, "uname", "-m").stdout.strip() == "aarch64"
    print(restarted.stdout)


def test_up_again_while_it_runs_says_so(emulated_board):
    result = orbitlite("hil", "emulate", "up")
    assert result.returncode == 0, result.stderr
    assert "already running (pid" in result.stdout


@pytest.mark.parametrize("command", ["up", "down"])
def test_without_root_up_and_down_say_so_in_one_line(tmp_path, command):
    env = {**os.environ, "ORBITLITE_CACHE": str(tmp_path), "HOME": str(tmp_path)}
    tmp_path.chmod(0o777)
    exe = Path(sys.executable).with_name("orbitlite")
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(exe), "hil",
                             "emulate", command], capture_output=True, text=True, env=env, timeout=120)
    assert_one_line_error(result, f"`hil emulate {command}` needs root")
    assert list(tmp_path.iterdir()) == []


def _write_tree(target: Path, log: Path) -> None:
    """Stands in for mmdebstrap in the cache's own tests: a tree with one file."""
    target.mkdir()
    (target / "etc").mkdir()
    (target / "etc" / "debian_version").write_text("12.0\n")
    log.write_text("built\n")


def test_a_half_built_root_filesystem_is_removed_and_built_again_not_used(tmp_path):
    files = Files(tmp_path / "rpi-emulated")
    files.rootfs.mkdir(parents=True)
    (files.rootfs / "half").write_text("cut short")  # a build without its marker
    said = []
    marker = build.ensure_built(files.rootfs, files.build_log, said.append, builder=_write_tree)
    assert not (files.rootfs / "half").exists()
    assert (files.rootfs / "etc" / "debian_version").exists()
    assert build.read_marker(files.rootfs) == marker and marker.recipe == build.RECIPE
    assert said == [f"discarding {files.rootfs}: a half build (no marker)"]
    assert not files.rootfs.with_name("rootfs.part").exists()
    # a complete build is used as it is
    assert build.ensure_built(files.rootfs, files.build_log, said.append, builder=_fail) == marker


def test_status_names_a_half_build(tmp_path):
    (tmp_path / "rpi-emulated" / "rootfs" / "etc").mkdir(parents=True)
    result = orbitlite("hil", "emulate", "status", env={**os.environ, "ORBITLITE_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "built:    no: " in result.stdout and "half build" in result.stdout


def test_a_root_filesystem_built_to_another_recipe_is_built_again(tmp_path):
    rootfs = tmp_path / "rootfs"
    build.ensure_built(rootfs, tmp_path / "build.log", print, builder=_write_tree)
    text = (rootfs / build.MARKER).read_text().replace('"bookworm"', '"bullseye"')
    (rootfs / build.MARKER).write_text(text)
    said = []
    build.ensure_built(rootfs, tmp_path / "build.log", said.append, builder=_write_tree)
    assert said == [f"discarding {rootfs}: built to another recipe"]
    assert build.read_marker(rootfs).recipe.suite == "bookworm"


def _fail(target: Path, log: Path) -> None:
    raise BoardError("mmdebstrap failed")


def test_a_failed_build_leaves_nothing_to_use(tmp_path):
    rootfs = tmp_path / "rootfs"

    def cut_short(target: Path, log: Path) -> None:
        _write_tree(target, log)
        raise BoardError("building the emulated board failed (mmdebstrap exit 1): E: cut short")

    with pytest.raises(BoardError, match="cut short"):
        build.ensure_built(rootfs, tmp_path / "build.log", print, builder=cut_short)
    assert not rootfs.exists() and not rootfs.with_name("rootfs.part").exists()


def test_a_tree_with_a_mount_under_it_is_not_removed(tmp_path):
    tree = tmp_path / "rootfs"
    (tree / "proc").mkdir(parents=True)
    (tree / "keep").write_text("kept")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(tree / "proc")], check=True)
    try:
        (tree / "proc" / "host-file").write_text("must survive")
        with pytest.raises(BoardError, match=f"{tree / 'proc'} is mounted under it"):
            build.remove_tree(tree)
        assert (tree / "proc" / "host-file").read_text() == "must survive" and (tree / "keep").exists()
    finally:
        subprocess.run(["umount", str(tree / "proc")], check=True)
    build.remove_tree(tree)
    assert not tree.exists()


def _host_pids_running(argument: bytes) -> list[int]:
    """The host's processes (not zombies) with `argument` on their command line."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if argument in (entry / "cmdline").read_bytes().split(b"\0") and \
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
