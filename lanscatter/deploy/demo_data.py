"""A generated demo data set for rehearsals: `lanscatter up --local --demo-data SIZE`.

Deterministic: the same size and seed give the same tree, byte for byte, so two rehearsals
compare. The layout is a pure function (`demo_layout`); `write_demo` turns it into files.
The mix looks like a build or a data set: nested folders, about 60% incompressible files (random
bytes from the BLAKE3 extendable output, about 1 GB/s), about 30% compressible text, duplicates of
some binaries (identical content is moved once), many small files, empty files and empty folders.
The tree is written beside its destination and renamed into place when complete, so an interrupted
generation is never mistaken for a data set.

Disk: a rehearsal holds the data set once at its source and once more in every other host's folder;
`rehearsal_disk_need` says how much that is, `check_disk` compares it with the free space (keeping
`FREE_MARGIN` free) and `existing_size` tells an existing source's size, so that asking for another
size over it is an error rather than silently ignored.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

log = logging.getLogger("lanscatter.demo")

DEFAULT_DEMO_SIZE = 256 * 2**20
PIECE = 8 * 2**20                      # write in pieces this size: bounded memory for any file
MTIME_NS = 1_700_000_000 * 10**9        # fixed mtimes, so repeated generations are identical

_BINARY_DIRS = ("bin", "assets/textures/env", "assets/textures/chars", "assets/audio", "levels/level-01",
                "levels/level-02/baked", "levels/level-03")
_TEXT_DIRS = ("docs", "docs/api", "levels/level-01", "levels/level-02", "config")
_WORDS = ("vertex", "shader", "texture", "level", "spawn", "light", "probe", "mesh", "bone", "anim",
          "cue", "sound", "patch", "build", "index", "entry", "offset", "region", "sector", "tile",
          "cache", "table", "value", "object", "header", "footer", "version", "release", "target",
          "asset", "bundle", "client", "server", "player", "camera", "scene", "node", "edge", "weight",
          "frame", "buffer")


@dataclass(frozen=True, slots=True)
class DemoFile:
    path: str                  # relative, "/"-separated
    size: int
    kind: str                  # "random" | "text"
    key: str                   # content seed: two files with one key and size are identical


@dataclass(frozen=True, slots=True)
class DemoLayout:
    files: tuple[DemoFile, ...]
    empty_dirs: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _sizes(rng: random.Random, budget: int, low: int, high: int) -> list[int]:
    """File sizes, log-uniform in [low, high], summing to `budget` exactly."""
    sizes: list[int] = []
    left = budget
    high = max(high, low)
    while left > 0:
        size = min(left, int(math.exp(rng.uniform(math.log(low), math.log(high)))))
        if left - size < low:          # no crumb at the end: the last file takes the rest
            size = left
        sizes.append(size)
        left -= size
    return sizes


def demo_layout(total: int, seed: int = 1) -> DemoLayout:
    """The tree for a data set of `total` bytes (a little more for tiny totals: one duplicate at least)."""
    rng = random.Random(seed)
    binary = int(total * 0.60)
    text = int(total * 0.30)
    copies = int(total * 0.05)
    files: list[DemoFile] = []

    for i, size in enumerate(_sizes(rng, binary, 64 * 1024, max(total // 6, 2**20))):
        folder = _BINARY_DIRS[i % len(_BINARY_DIRS)]
        ext = (".pak", ".tex", ".bin", ".snd")[i % 4]
        files.append(DemoFile(f"{folder}/part-{i:03d}{ext}", size, "random", f"{seed}:bin:{i}"))
    binaries = list(files)

    for i, size in enumerate(_sizes(rng, text, 4096, max(total // 10, 64 * 1024))):
        folder = _TEXT_DIRS[i % len(_TEXT_DIRS)]
        ext = (".txt", ".json", ".md", ".cfg")[i % 4]
        files.append(DemoFile(f"{folder}/notes-{i:03d}{ext}", size, "text", f"{seed}:text:{i}"))

    picked = [src for src in rng.sample(binaries, len(binaries)) if src.size <= copies]
    taken: list[DemoFile] = []
    for src in picked:
        if sum(f.size for f in taken) + src.size <= copies:
            taken.append(src)
    if not taken and binaries:            # always at least one duplicate, however small the set
        taken.append(min(binaries, key=lambda f: f.size))
    for i, src in enumerate(taken):
        files.append(DemoFile(f"backup/copy-{i:02d}-{src.path.rsplit('/', 1)[1]}", src.size, src.kind, src.key))
    small = max(0, total - binary - text - sum(f.size for f in taken))

    count = max(1, min(200, small // 2048))
    for i, size in enumerate(_split(rng, small, count)):
        kind = "text" if i % 2 else "random"
        files.append(DemoFile(f"config/small/{i // 50:02d}/item-{i:03d}.dat", size, kind, f"{seed}:small:{i}"))
    files += [DemoFile("logs/empty.log", 0, "text", "empty"), DemoFile("config/.keep", 0, "text", "empty")]
    return DemoLayout(tuple(files), ("empty", "empty/nested/deeper", "levels/level-unused"))


def _split(rng: random.Random, budget: int, count: int) -> list[int]:
    """`count` sizes summing to `budget`, unevenly."""
    cuts = sorted(rng.randrange(budget + 1) for _ in range(count - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, budget])]


def _text_pool(seed: int) -> bytes:
    rng = random.Random(seed)
    lines = []
    for n in range(4000):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(4, 14)))
        lines.append(f"{n:05d} {words}\n")
    return "".join(lines).encode()


def _text_pieces(key: str, size: int, pool: bytes) -> Iterable[bytes]:
    rng = random.Random(key)
    left = size
    while left > 0:
        start = rng.randrange(len(pool) // 2)
        piece = pool[start: start + min(left, len(pool) - start)]
        left -= len(piece)
        yield piece


def _random_pieces(key: str, size: int) -> Iterable[bytes]:
    xof = blake3(key.encode())
    for offset in range(0, size, PIECE):
        yield xof.digest(length=min(PIECE, size - offset), seek=offset)


def write_demo(root: Path, layout: DemoLayout, seed: int = 1,
               progress: Callable[[int, int], None] | None = None) -> None:
    """Write `layout` as the folder `root` (which must not exist yet)."""
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    pool = _text_pool(seed)
    done, total = 0, layout.total_bytes
    for i, f in enumerate(layout.files):
        path = partial / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        pieces = _random_pieces(f.key, f.size) if f.kind == "random" else _text_pieces(f.key, f.size, pool)
        with open(path, "wb") as out:
            for piece in pieces:
                out.write(piece)
                done += len(piece)
                if progress is not None:
                    progress(done, total)
        os.utime(path, ns=(MTIME_NS + i * 10**9, MTIME_NS + i * 10**9))
    for d in layout.empty_dirs:
        (partial / d).mkdir(parents=True, exist_ok=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, root)


FREE_MARGIN_FRACTION = 0.05          # of the file system, kept free whatever the rehearsal needs
FREE_MARGIN_MIN = 1 * 2**30


@dataclass(frozen=True, slots=True)
class DiskNeed:
    source_bytes: int          # to generate at the source (0 when it exists)
    copies_bytes: int          # the other hosts' folders
    copies: int

    @property
    def total(self) -> int:
        return self.source_bytes + self.copies_bytes


def rehearsal_disk_need(size: int, hosts: int, source_exists: bool) -> DiskNeed:
    """What a rehearsal of `hosts` hosts (the origin among them) writes for a data set of `size`."""
    copies = max(0, hosts - 1)
    return DiskNeed(0 if source_exists else size, copies * size, copies)


def free_bytes(path: Path) -> tuple[int, int]:
    """(free, file system size) where `path` is or would be created."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return usage.free, usage.total


def fits(need: int, free: int, fs_size: int) -> bool:
    """Whether writing `need` bytes leaves the margin free."""
    return need <= free - max(FREE_MARGIN_MIN, int(fs_size * FREE_MARGIN_FRACTION))


def existing_size(root: Path) -> int:
    """Bytes of the regular files under `root` (the size of an existing data set)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def generate_demo(root: Path, total: int, seed: int = 1) -> DemoLayout:
    """Generate the demo data set into `root`, logging progress every couple of seconds."""
    layout = demo_layout(total, seed)
    started = last = time.monotonic()

    def report(done: int, whole: int) -> None:
        nonlocal last
        if time.monotonic() - last >= 2.0:
            last = time.monotonic()
            log.info("demo data: %d%% of %.0f MiB", 100 * done // max(whole, 1), whole / 2**20)

    log.info("generating a %.0f MiB demo data set (%d files) in %s", layout.total_bytes / 2**20,
             len(layout.files), root)
    write_demo(root, layout, seed, report)
    log.info("demo data ready in %.1f s", time.monotonic() - started)
    return layout
