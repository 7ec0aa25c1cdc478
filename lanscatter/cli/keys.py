"""`lanscatter keys new|show`: the origin's signing key (docs/security.md, "Signed versions").

`new --dir DIR` writes DIR/origin.key (PEM, mode 0600) and prints the line for the site tree;
`show DIR` prints that line again (DIR may also be the key file itself). The master signs with
the file (`--signing-key`, or `origin_key_file:` in the site tree); hosts check with the line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lanscatter.core.signing import public_key_of
from lanscatter.disk.signing_keys import PRIVATE_KEY_FILE, create_signing_key, load_signing_key


def _key_file(path: Path) -> Path:
    return path / PRIVATE_KEY_FILE if path.is_dir() else path


def cmd_new(args: argparse.Namespace) -> int:
    path = args.dir / PRIVATE_KEY_FILE
    key = create_signing_key(path)
    print(f"origin_key: {public_key_of(key).text}")
    print(f"# private key written to {path} (keep it on the origin only; the master signs with "
          f"--signing-key {path})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(f"origin_key: {public_key_of(load_signing_key(_key_file(args.dir))).text}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    k = sub.add_parser("keys", help="the origin's signing key: create one, print its public half",
                       description="Only versions signed by the origin's key are written on the hosts. "
                                   "Create the key on the origin, give the master the file "
                                   "(--signing-key) and every host the printed line (`origin_key:` "
                                   "in the site tree, or --origin-key).")
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = ks.add_parser("new", help=f"create DIR/{PRIVATE_KEY_FILE} and print the public key line",
                        description=f"Write a new Ed25519 private key to DIR/{PRIVATE_KEY_FILE} (PEM, "
                                    "mode 0600; an existing file is never replaced) and print the line "
                                    "to paste into the site tree.")
    new.add_argument("--dir", type=Path, required=True, metavar="DIR", help="folder for the key (created)")
    new.set_defaults(func=cmd_new)
    show = ks.add_parser("show", help="print the public key line of an existing key",
                         description=f"Print the `origin_key:` line of DIR/{PRIVATE_KEY_FILE} (or of the "
                                     "key file given).")
    show.add_argument("dir", type=Path, metavar="DIR", help=f"the folder holding {PRIVATE_KEY_FILE}, or the file")
    show.set_defaults(func=cmd_show)
