"""The `orbitlite` console command: one subcommand group per deployable part."""
