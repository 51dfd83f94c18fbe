"""The board runs `onboard` with numpy, msgpack, pyserial and a TFLite interpreter only."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from ground.datasets.synthetic import generate_patches
from onboard.contracts.bench import decode_measured, read_bench
from tests.conftest import SPYNDEX_BANDS, SPYNDEX_NPY

# Run in a fresh interpreter where importing TensorFlow (or Keras, or the ground side) fails,
# as on a board where they are not installed.
BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"} | set(sys.argv[1:])
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
    sys.meta_path.insert(0, Block())
""")


def _python(code: str, also_blocked: tuple[str, ...] = ("ground", "models", "hil")) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code), *also_blocked], capture_output=True,
                          text=True, timeout=300)


def test_the_blocker_blocks():
    result = _python("import tensorflow")
    assert result.returncode != 0 and "blocked" in result.stderr


def test_import_onboard_without_tensorflow():
    result = _python("""
        import onboard, onboard.cli, onboard.run.strips, onboard.inference.model, onboard.contracts.product, onboard._native
        import sys
        assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], sorted(sys.modules)
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_orbitlite_onboard_run_without_tensorflow(ground_models, tmp_path):
    result = _python(f"""
        import sys
        from orbitlite.cli import cli
        try:
            cli.main(["onboard", "run", {str(SPYNDEX_NPY)!r}, "--bands", {SPYNDEX_BANDS!r},
                      "--model", {str(ground_models["tflite"])!r}, "--out", {str(tmp_path)!r}])
        except SystemExit as e:
            assert e.code in (0, None), e.code
        loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not loaded, loaded
    """)
    assert result.returncode == 0, result.stderr
    assert "100 tiles" in result.stdout
    assert len(list(tmp_path.glob("*.msgpack"))) == 1


def test_ground_command_without_tensorflow_says_what_to_install(tmp_path):
    generate_patches(2, size=8, bands=("B04", "B08")).save(tmp_path / "d.npz")
    result = _python(f"""
        from orbitlite.cli import cli
        cli.main(["ground", "train", "--data", {str(tmp_path / "d.npz")!r}, "--out", {str(tmp_path / "m.keras")!r}])
    """, also_blocked=())
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "pip install 'orbitlite[ground]'" in result.stderr


def test_no_interpreter_at_all_is_one_clear_line(ground_models, tmp_path):
    result = _python(f"""
        from orbitlite.cli import cli
        cli.main(["onboard", "run", {str(SPYNDEX_NPY)!r}, "--bands", {SPYNDEX_BANDS!r},
                  "--model", {str(ground_models["tflite"])!r}, "--out", {str(tmp_path)!r}])
    """, also_blocked=("ai_edge_litert", "tflite_runtime"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no TFLite interpreter installed: pip install ai-edge-litert" in result.stderr


def test_orbitlite_onboard_bench_without_tensorflow(ground_models):
    """What `hil bench` runs on the board: its JSON on stdout, its end-to-end run in a child."""
    result = _python(f"""
        import sys
        from orbitlite.cli import cli
        try:
            cli.main(["onboard", "bench", "--model", {str(ground_models["tflite"])!r}, "--cores", "1",
                      "--batches", "4", "--min-runs", "3", "--min-seconds", "0", "--scene", {str(SPYNDEX_NPY)!r},
                      "--bands", {SPYNDEX_BANDS!r}])
        except SystemExit as e:
            assert e.code in (0, None), e.code
        loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not loaded, loaded
    """)
    assert result.returncode == 0, result.stderr
    measured = decode_measured(result.stdout.encode(), "stdout")
    assert measured.main.count >= 3 and [t.batch for t in measured.batch_sweep] == [4]
    assert measured.end_to_end.tiles == 100 and measured.valid


def test_hil_bench_and_its_report_without_tensorflow(ground_models, tmp_path):
    """The harness on the ground runs without TensorFlow or the ground side (the report needs
    matplotlib alone)."""
    result = _python(f"""
        import sys
        from orbitlite.cli import cli
        try:
            cli.main(["hil", "bench", "--model", {str(ground_models["tflite"])!r}, "--out", {str(tmp_path)!r},
                      "--batches", "1", "--min-runs", "3", "--min-seconds", "0"])
        except SystemExit as e:
            assert e.code in (0, None), e.code
        loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not loaded, loaded
    """, also_blocked=("ground", "models"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report.html").exists() and read_bench(tmp_path / "result.json").measured.valid
