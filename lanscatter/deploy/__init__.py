"""Running a site tree on its real hosts: over SSH from one control host, or as systemd services."""
