"""The Textual monitor: live per-site chunk matrices, rates and WAN link use (a client only)."""
