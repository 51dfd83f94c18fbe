"""Benchmarks on a board: `orbitlite hil bench` runs `orbitlite onboard bench` on the board
through its transport (`run.py`), adds the energy per tile and per km^2 from the board's power
meter or its profile's watts, writes one versioned result (onboard.contracts.bench) and a report
(`report.py`: Markdown and a self-contained HTML page with PNG plots); `hil compare` puts results
side by side. The board, its transport and its meter come from its profile (hil/boards/)."""
