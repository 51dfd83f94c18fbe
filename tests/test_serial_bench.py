"""`orbitlite hil bench` through the serial transport: the real `orbitlite onboard serve` answers
on a pair of pseudo-terminals (tests/linesim.py), and the user's own profile named `local` reaches
it over the link. The payload runs the bench (its link command `bench`) on the model and scene the
ground uploaded to `files/`, and the ground downloads what it measured. A bench whose files are
not uploaded ones (outside the file area, a symbolic link, another area) or whose args break
their bounds is refused in one line; the board is not lent to a bench while a scene runs, and no
scene starts while it is lent. No timing is asserted."""

from __future__ import annotations

import os
import shutil

import pytest

from hil.boards.drivers import open_transport
from hil.boards.profile import load_board
from hil.errors import TransportError
from onboard.contracts.bench import decode_measured, read_bench
from onboard.errors import BusyError
from onboard.run.budget import FixedPower
from onboard.service.config import load_config
from onboard.service.loop import Service
from tests.conftest import orbitlite
from tests.test_serial_transport import payload  # noqa: F401 (a fixture)
from tests.test_service import spool_scene, write_config


def test_hil_bench_of_local_through_the_serial_link(payload, ground_models, tmp_path):
    boards = tmp_path / "boards"  # the user's `local`: this machine, reached over the payload's link
    boards.mkdir()
    profile = payload["profile"].read_text().replace('name = "lab"', 'name = "local"')
    (boards / "local.toml").write_text(profile.replace('key_file = "link.key"',
                                                       f'key_file = "{tmp_path / "link.key"}"'))
    model, out = ground_models["tflite"], tmp_path / "out"
    result = orbitlite("hil", "bench", "--board", "local", "--boards-dir", str(boards), "--model", str(model),
                       "--out", str(out), "--batch", "8", "--batches", "1,8", "--min-runs", "5", "--min-seconds", "0")
    assert result.returncode == 0, result.stderr
    assert f"{model.name} on local via serial: " in result.stdout and "\nvalid\n" in result.stdout

    r = read_bench(out / "result.json")  # validated against the schema
    m = r.measured
    assert r.board.name == "local" and r.board.transport == "serial" and r.board.cores == 2
    assert m.main.batch == 8 and m.main.count >= 5 and len(m.latencies_us) == m.main.count and m.valid
    assert m.main.tiles_per_s > 0
    assert 0 < m.main.min_us <= m.main.p50_us <= m.main.p90_us <= m.main.p99_us <= m.main.max_us
    assert [t.threads for t in m.threads_sweep] == [1, 2] and [t.batch for t in m.batch_sweep] == [1, 8]
    assert m.end_to_end.tiles == 25 and m.end_to_end.tiles_per_s > 0 and m.end_to_end.peak_rss_mb > 10
    assert r.energy.source == "modelled" and r.energy.busy_seconds == m.end_to_end.seconds
    assert {p.name for p in out.iterdir()} >= {"result.json", "report.md", "report.html", "latency.png",
                                               "threads.png", "energy.png"}
    # the payload ran it on what the ground uploaded to files/, and kept what it measured
    root = payload["root"]
    assert (root / "files" / model.name).read_bytes() == model.read_bytes()
    assert sorted(p.name for p in (root / "files").iterdir()) == [model.name, f"{model.name}.json",
                                                                   "s2-spyndex-150px.npy"]
    assert decode_measured((root / "bench/result.json").read_bytes(), "the payload's result") == m


def test_a_bench_of_files_that_are_not_uploaded_ones_is_refused_in_one_line(payload, ground_models, tmp_path):
    root, model = payload["root"], ground_models["tflite"]
    (root / "files").mkdir(exist_ok=True)
    os.symlink(model, root / "files/link.tflite")  # a link out of the file area, its manifest a real file
    shutil.copy(f"{model}.json", root / "files/link.tflite.json")
    shutil.copy(model, root / "files/m.tflite")  # a model whose manifest is a link
    os.symlink(f"{model}.json", root / "files/m.tflite.json")
    for name in ("files/good.tflite", "slots/b/m.tflite"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(model, root / name)
        shutil.copy(f"{model}.json", root / f"{name}.json")
    link = open_transport(load_board(payload["profile"]))
    try:
        for args, says in [
            ({"model": "../x.tflite"}, "'../x.tflite' is not a path inside the payload's root"),
            ({"model": "files/../../x.tflite"}, "is not a path inside the payload's root"),
            ({"model": "files/link.tflite"}, "files/link.tflite is a symbolic link or a folder"),
            ({"model": "files/m.tflite"}, "files/m.tflite.json is a symbolic link or a folder"),
            ({"model": "slots/b/m.tflite"}, "'slots/b/m.tflite': name a file directly in files/"),
            ({"model": "files/absent.tflite"}, "no file files/absent.tflite on the payload: upload it first"),
            ({"model": "files/good.tflite", "scene": "/etc/passwd"}, "'/etc/passwd' is not a path inside"),
            ({"model": "files/good.tflite", "scene": "spool/s.npy"}, "'spool/s.npy': name a file directly in files/"),
            ({"model": "files/good.tflite", "threads": 65}, "bench: threads: Expected `int` <= 64"),
            ({"model": "files/good.tflite", "batches": []}, "bench: batches: Expected `array` of length >= 1"),
            ({"model": "files/good.tflite", "rule": {"max_seconds": 0}},
             "bench: rule.max_seconds: Expected `float` > 0.0"),
        ]:
            with pytest.raises(TransportError) as refused:
                link.call("bench", **args)
            message = str(refused.value)
            assert message.startswith("serial /dev/pts/") and "bench: refused (failed): " in message, message
            assert says in message and "\n" not in message, message
    finally:
        link.close()
    assert not (root / "bench/result.json").exists()


def test_the_board_is_lent_to_a_bench_only_between_scenes(ground_models, spyndex_scene, tmp_path):
    config = load_config(write_config(tmp_path, ground_models["tflite"]))
    spool_scene(tmp_path / "spool", "a.npy", spyndex_scene, 1000)
    refusals = []

    class Probe(FixedPower):
        """Power read while the scene runs: a bench asks for the board then."""

        def read(self):
            try:
                with service.lent("bench"):
                    pass
            except BusyError as exc:
                refusals.append(str(exc))
            return super().read()

    with Service(config, power=Probe()) as service:
        with service.lent("bench"):  # lent: the scene waits in the spool
            assert service.run(once=True).done == []
        assert (tmp_path / "spool/a.npy").exists()
        assert service.run(once=True).done == ["a.npy"]
    assert refusals and set(refusals) == {"bench: the payload is running scene a; ask again when `status` shows "
                                          "no scene"}
    assert (tmp_path / "spool/done/a.npy").exists()
