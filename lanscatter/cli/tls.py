"""`lanscatter tls`: make a node's TLS identity and read certificates' fingerprints.

`tls new --dir DIR` writes DIR/cert.pem and DIR/key.pem (a self-signed certificate and its key)
and prints the fingerprint to put in the site tree (`tls_fingerprint:` of the host). `tls
fingerprint FILE` prints the fingerprint of a certificate. Building contexts is `tls.py`'s.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from lanscatter.net.tls import CERT_FILE, KEY_FILE, fingerprint_file, new_identity


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = sub.add_parser("tls", help="TLS identities of nodes (certificates, fingerprints)",
                       description="Make a node's key and self-signed certificate, or print a "
                                   "certificate's SHA-256 fingerprint (what peers pin).")
    tsub = t.add_subparsers(dest="tls_command", metavar="ACTION", required=True)
    n = tsub.add_parser("new", help=f"make {KEY_FILE} and {CERT_FILE} in DIR and print the fingerprint")
    n.add_argument("--dir", type=Path, required=True, metavar="DIR", help="where to write them")
    n.add_argument("--name", default=None, help="the name in the certificate (default: this host's name)")
    n.add_argument("--force", action="store_true", help="replace an identity DIR already holds")
    n.set_defaults(func=run_new)
    f = tsub.add_parser("fingerprint", help="print the SHA-256 fingerprint of a certificate")
    f.add_argument("cert", type=Path, metavar="FILE", help=f"a PEM certificate (e.g. DIR/{CERT_FILE})")
    f.set_defaults(func=run_fingerprint)


def run_new(args: argparse.Namespace) -> int:
    name = args.name or socket.gethostname()
    fp = new_identity(args.dir, name, overwrite=args.force)
    print(f"wrote {args.dir / KEY_FILE} (keep it private) and {args.dir / CERT_FILE}")
    print(f"fingerprint: {fp}")
    print(f"site tree:   tls_fingerprint: {fp}    # under host {name}")
    return 0


def run_fingerprint(args: argparse.Namespace) -> int:
    print(fingerprint_file(args.cert))
    return 0
