"""Thin shells that compose core, disk and net into the master, peer and relay."""
