"""Rehearse a site tree on one Linux machine: namespaces, bridges and shaped links (needs root)."""
