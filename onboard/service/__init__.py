"""The spool service (`orbitlite onboard serve`): configuration, spool, telemetry and the loop."""
