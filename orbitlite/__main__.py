"""`python -m orbitlite`: the console command, where its script is not on the PATH (a board's
virtual environment run by its interpreter)."""

from orbitlite.cli import main

main()
