"""The int8 agreement bench's table, printed in the terminal summary of `make bench` (a test's
own output is captured, and a passing test's is not shown)."""

from __future__ import annotations

import pytest

INT8_ROWS = pytest.StashKey[list]()


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
