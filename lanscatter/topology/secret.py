"""Reading the swarm secret from where the site tree says it is.

The file names a reference (`env: VARIABLE` or `file: PATH`), so the YAML itself can be committed
and shared; `value:` is for rehearsals only. A missing variable or file is an error that names the
position of the reference in the YAML file, and so is a secret too short to resist guessing
(auth.MIN_SECRET_CHARS).
"""

from __future__ import annotations

import os
from pathlib import Path

from lanscatter.core.auth import MIN_SECRET_CHARS
from lanscatter.topology.model import SecretRef
from lanscatter.topology.problems import Problem, TopologyError


def _fail(ref: SecretRef, message: str, code: str = "secret-missing") -> TopologyError:
    return TopologyError([Problem(ref.file, ref.pos.line, ref.pos.col, code, message)])


def resolve_secret(ref: SecretRef | None, base_dir: Path) -> str | None:
    """The secret text (surrounding whitespace removed), or None when there is no reference."""
    if ref is None:
        return None
    if ref.kind == "value":
        secret = ref.ref.strip()
    elif ref.kind == "env":
        secret = os.environ.get(ref.ref, "").strip()
        if not secret:
            raise _fail(ref, f"the swarm secret is read from environment variable ${ref.ref}, "
                        "which is not set or empty")
    else:
        path = Path(ref.ref).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(ref, f"cannot read the swarm secret from {path}: "
                        f"{getattr(exc, 'strerror', None) or exc}") from exc
        if not secret:
            raise _fail(ref, f"the swarm secret file {path} is empty")
    if not secret:
        raise _fail(ref, "the swarm secret is empty")
    if len(secret) < MIN_SECRET_CHARS:
        raise _fail(ref, f"the swarm secret has {len(secret)} characters; at least {MIN_SECRET_CHARS} are "
                    "needed (`lanscatter secret new` makes one)", "weak-secret")
    return secret
