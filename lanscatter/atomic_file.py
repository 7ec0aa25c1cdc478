"""Files written whole or not at all: a reader (or a crash) never sees half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write beside `path`, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json_atomic(path: Path, doc: object) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
