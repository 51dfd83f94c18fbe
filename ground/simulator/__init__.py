"""Downlink budget simulation: an orbit from a TLE (SGP4), passes over ground stations, sunlight
and eclipse (skyfield), an imaging plan, on-board processing paid from a battery, and the store
and downlink queue, stepped over days in three modes (`payload`). Geometry is computed for every
step at once with numpy (`orbit`, `geometry`); the store, queues and battery are then stepped in
order, since each step depends on the one before (`payload`). `config` reads the configuration,
`report` writes what came out."""
