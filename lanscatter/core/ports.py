"""The roles' default ports, in one place: the node commands, the site tree and `publish` use them
(and a small module, so a command that only needs a default imports no role)."""

DEFAULT_MASTER_PORT = 10564     # a master's (or a relay's site-side) control, chunk and status port
DEFAULT_PEER_PORT = 10565       # a peer's chunk and status port
