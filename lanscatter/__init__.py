"""Lanscatter: one-way, P2P-assisted distribution of a large folder to many hosts and sites."""

__version__ = "0.1.0"
