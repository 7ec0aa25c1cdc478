"""The sync folder on disk: store, scanner, hash cache, version staging, key files."""
