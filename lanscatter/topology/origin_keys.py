"""The origin's keys for one run of a site tree's roles (`up`, `emulate`): which public key every
role checks (`--origin-key`) and which private key the origin's master signs with (`--signing-key`).
Reads (and for a rehearsal, creates) key files; docs/security.md says why each is what it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lanscatter.core.errors import ConfigError
from lanscatter.core.signing import public_key_of
from lanscatter.disk.signing_keys import PRIVATE_KEY_FILE, load_or_create_signing_key, load_signing_key
from lanscatter.topology.derive import DeploymentPlan, HostPlan

log = logging.getLogger("lanscatter.up")


def run_keys(plan: DeploymentPlan, hosts: Sequence[HostPlan], *, rehearsal: Path | None,
             state_root: Path) -> tuple[str | None, Path | None]:
    """The origin's public key every role checks, and the private key its master signs with.

    A rehearsal (`up --local`, `emulate`; `rehearsal` is its work directory) signs with the tree's
    origin_key_file, or else with a key of its own made there once; every role gets that key's
    public half, so a rehearsal needs no step by hand. A real deployment takes the tree's keys; on the origin the private key
    (origin_key_file, or else the master's default origin.key in its state folder) must be
    origin_key's pair, or every host would refuse every version."""
    ds = plan.dataset
    if rehearsal is not None and ds.signing_key_file is None:
        path = rehearsal / PRIVATE_KEY_FILE
        key, created = load_or_create_signing_key(path)
        if created:
            log.info("the rehearsal signs its versions with a key of its own: %s", path)
        return public_key_of(key).text, path
    origin = next((h for h in hosts if h.role == "master"), None)
    if origin is None:
        return ds.origin_key, None
    if ds.signing_key_file is None:
        # The master will sign with origin.key in its state folder: it must be origin_key's pair.
        default = state_root / origin.name / PRIVATE_KEY_FILE
        if ds.origin_key is not None and (
                not default.exists() or public_key_of(load_signing_key(default)).text != ds.origin_key):
            raise ConfigError(f"this host is the origin, but holds no private key for origin_key {ds.origin_key}",
                              "give `origin_key_file:` in the site tree (the file `lanscatter keys new` wrote), "
                              f"or put that file at {default}")
        return ds.origin_key, None
    public = public_key_of(load_signing_key(ds.signing_key_file)).text
    if ds.origin_key is not None and ds.origin_key != public:
        raise ConfigError(f"origin_key_file {ds.signing_key_file} is not the private half of origin_key "
                          f"{ds.origin_key}", f"put `origin_key: {public}` in the site tree, or name "
                          "the right key file")
    return public, ds.signing_key_file
