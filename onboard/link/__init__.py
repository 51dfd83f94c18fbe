"""The payload's end of the serial link: framing, sealing, ports, the endpoint, its commands, slots and file area."""
