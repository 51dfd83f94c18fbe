"""A NAS database of NAS-Bench-101 cells trained on EO patches (`orbitlite ground nas …`)."""
