"""What a new version costs on the network: content-defined against fixed chunks, beside rsync.

A data set of 20 files (4 large, 16 small, ~1 GiB by default) is changed four ways, each on its own
copy: (a) 100 insertions of 1-100 bytes at random offsets of the large files, (b) 1 % of the bytes
overwritten in place in 100 runs, (c) one file appended to, (d) files renamed and moved between
folders. For each, the bytes a host must fetch are the chunks of the new manifest that the old one
lacks (every other chunk is copied locally), set beside the bound 1.2 x (changed bytes + one average
chunk per edit) + the manifest, beside fixed chunks of the same target size, and beside rsync's
"Literal data" for the same change (delta transfer between two local folders).

    .venv/bin/python benchmarks/cdc_update.py [--size 1GiB] [--work /tmp/cdc-update]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from lanscatter.core.chunking import AUTO, CDC, FIXED, Chunking
from lanscatter.core.manifest import Manifest, diff_manifests
from lanscatter.core.sizes import parse_size
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder

MIB = 1 << 20
LARGE = ("big/game.pak", "big/vm.img", "data/set-a.bin", "data/set-b.bin")


def _make(root: Path, total: int, rnd: random.Random) -> None:
    large = int(total * 0.8) // len(LARGE)
    small = (total - large * len(LARGE)) // 16
    for rel in LARGE:
        _write(root / rel, large, rnd)
    for k in range(16):
        _write(root / f"small/{k % 4}/file{k}.dat", small + rnd.randrange(small // 4), rnd)


def _write(path: Path, size: int, rnd: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MIB)
            fh.write(rnd.randbytes(n))
            left -= n


def _insertions(root: Path, rnd: random.Random) -> tuple[int, int]:
    per_file: dict[str, list[tuple[int, bytes]]] = {}
    changed = 0
    for _ in range(100):
        rel = rnd.choice(LARGE)
        n = rnd.randint(1, 100)
        per_file.setdefault(rel, []).append((rnd.randrange((root / rel).stat().st_size), rnd.randbytes(n)))
        changed += n
    for rel, edits in per_file.items():
        data = (root / rel).read_bytes()
        for at, piece in sorted(edits, reverse=True):
            data = data[:at] + piece + data[at:]
        (root / rel).write_bytes(data)
    return changed, 100


def _overwrites(root: Path, rnd: random.Random) -> tuple[int, int]:
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    run = total // 100 // 100
    for _ in range(100):
        rel = rnd.choice(LARGE)
        with open(root / rel, "r+b") as fh:
            fh.seek(rnd.randrange((root / rel).stat().st_size - run))
            fh.write(rnd.randbytes(run))
    return 100 * run, 100


def _append(root: Path, rnd: random.Random) -> tuple[int, int]:
    add = 5 * MIB + 12345
    with open(root / LARGE[0], "ab") as fh:
        fh.write(rnd.randbytes(add))
    return add, 1


def _moves(root: Path, rnd: random.Random) -> tuple[int, int]:
    (root / "moved").mkdir()
    os.rename(root / LARGE[1], root / "moved/vm-renamed.img")
    for k in range(0, 16, 3):
        src = root / f"small/{k % 4}/file{k}.dat"
        os.rename(src, root / f"small/{(k + 1) % 4}/renamed{k}.dat")
    return 0, 0


CHANGES: dict[str, Callable[[Path, random.Random], tuple[int, int]]] = {
    "a_insertions": _insertions, "b_overwrite_1pct": _overwrites, "c_append": _append, "d_rename_move": _moves,
}


def _scan(root: Path, chunking: Chunking) -> Manifest:
    return scan_folder(root, chunking, HashCache(None))[0]


def _rsync_literal(old: Path, new: Path, work: Path) -> int:
    dst = work / "rsync-dst"
    shutil.rmtree(dst, ignore_errors=True)
    subprocess.run(["cp", "-a", f"{old}/.", str(dst)], check=True)
    out = subprocess.run(["rsync", "-a", "--no-whole-file", "--delete", "--stats", f"{new}/", f"{dst}/"],
                         check=True, capture_output=True, text=True).stdout
    shutil.rmtree(dst)
    m = re.search(r"Literal data: ([\d,]+)", out)
    assert m, out
    return int(m.group(1).replace(",", ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/cdc-update"))
    args = ap.parse_args()
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    base = work / "v1"
    _make(base, args.size, random.Random(1))
    old_cdc = _scan(base, Chunking(CDC, AUTO))
    target = old_cdc.chunk_size
    old_fixed = _scan(base, Chunking(FIXED, target))
    avg = old_cdc.total_bytes / len(old_cdc.chunk_table())
    results = []
    for seed, (name, change) in enumerate(CHANGES.items()):
        new = work / name
        subprocess.run(["cp", "-a", str(base), str(new)], check=True)
        changed, edits = change(new, random.Random(100 + seed))
        row: dict[str, object] = {"change": name, "changed_bytes": changed, "edits": edits}
        new_cdc = _scan(new, Chunking(CDC, target))
        new_fixed = _scan(new, Chunking(FIXED, target))
        manifest_bytes = len(new_cdc.to_json())
        fetch = diff_manifests(old_cdc, new_cdc).new_bytes
        bound = 1.2 * (changed + avg * edits) + manifest_bytes
        row.update(cdc_fetch=fetch, manifest_bytes=manifest_bytes, bound=int(bound), within=fetch + manifest_bytes <= bound,
                   fixed_fetch=diff_manifests(old_fixed, new_fixed).new_bytes,
                   rsync_literal=_rsync_literal(base, new, work))
        results.append(row)
        shutil.rmtree(new)
        print(json.dumps(row), flush=True)
    print(json.dumps({"data_bytes": old_cdc.file_bytes, "files": len(old_cdc.files), "target": target,
                      "avg_chunk": int(avg), "chunks": len(old_cdc.chunk_table())}))
    shutil.rmtree(work)
    return 0 if all(r["within"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
