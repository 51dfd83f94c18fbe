"""The ground side's commands, one module per group: `orbitlite ground …` (`ground`, with its
`data` subgroup in `data`), `orbitlite downlink …` (`downlink`) and `orbitlite demo` (`demo`).
They parse options and print; the work is done in the library. TensorFlow is imported inside
the commands that need it, so `--help` stays fast."""
