"""Topology: the site tree in YAML, its validation and the deployment plan derived from it."""
