"""Files written whole or not at all: a reader (or a crash) never sees half a file."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write beside `path`, then rename over it. Each writer has its own temporary file, so two
    writers of one path (two `up` processes sharing a work folder) never rename each other's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)     # the umask decides, as before
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, doc: object) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
