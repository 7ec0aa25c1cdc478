"""The pure core: manifest, protocol, handshake, planner, links, status; no I/O, no clock of its own."""
