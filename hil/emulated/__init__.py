"""The emulated flight-like board, `rpi-emulated`: a Raspberry Pi's Debian bookworm arm64 userland
run on this machine through qemu-user-static and binfmt_misc, answering SSH on loopback. An
emulation: it tests correctness with arm64 binaries; its timings are not a Pi's.

`build` makes its root filesystem once (mmdebstrap), cached outside the repository; `board` starts
and stops its own sshd in that root filesystem and reports its state; `cli` is `orbitlite hil
emulate up|down|status`."""
