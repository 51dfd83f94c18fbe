"""Whether timings count (`make bench`), and the int8 agreement bench's table, printed in the
terminal summary (a passing test's own output is not shown)."""

from __future__ import annotations

import pytest

INT8_ROWS = pytest.StashKey[list]()


def _enabled(config: pytest.Config) -> bool:
    return not config.getoption("benchmark_disable") or config.getoption("benchmark_enable")


@pytest.fixture
def benchmarks_enabled(request) -> bool:
    """True under `make bench` (--benchmark-enable). Ratios of timings are asserted only then: under
    `make test` (--benchmark-disable) the same code runs and asserts behaviour, since a loaded
    machine can upset any timing."""
    return _enabled(request.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmarks marked `bench_only` (hours of fuzzing, training every family) belong to `make
    bench` alone: `make test` deselects them (their behaviour is tested there at a bounded size)."""
    if _enabled(config):
        return
    bench_only = [item for item in items if item.get_closest_marker("bench_only")]
    if bench_only:
        config.hook.pytest_deselected(items=bench_only)
        items[:] = [item for item in items if not item.get_closest_marker("bench_only")]


def pytest_terminal_summary(terminalreporter, config) -> None:
    rows = config.stash.get(INT8_ROWS, [])
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("int8 TFLite against its own Keras model, held-out split of SYNTHETIC tiles")
    write(f"{'family':10} {'epochs':>6} {'tiles':>5} {'keras acc':>9} {'tflite acc':>10} {'agreement':>9} "
          f"{'undecided':>9} {'agreement on decided':>20}")
    for r in sorted(rows, key=lambda r: (r["epochs"], r["family"])):
        write(f"{r['family']:10} {r['epochs']:>6} {r['tiles']:>5} {r['keras']:>9.4f} {r['tflite']:>10.4f} "
              f"{r['agreement']:>9.4f} {r['undecided']:>9.1%} {r['decided_agreement']:>20.4f}")
