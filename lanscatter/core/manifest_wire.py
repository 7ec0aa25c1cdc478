"""A manifest on the wire as columns (manifest format 3, protocol 9), and decoding either format.

Format 2 (`Manifest.to_dict`) is a JSON list per file: decoded, a million files are a million
lists, texts and numbers, several hundred megabytes before the manifest is even built. Format 3
carries the `FileTable`'s columns instead, each one JSON text, so a decoded frame is a dozen
strings and the table is built from them directly:

    paths         every path's UTF-8, one after another       path_lengths  bytes of each path
    sizes, mtimes per file (signed 64-bit)                    executable    per file, 0 or 1
    counts        per file, its number of chunk references    hashes        distinct chunks, 32 bytes each
    refs          per reference, its chunk's number           lengths       per reference, its length

Numbers are little-endian arrays; each column is zlib-compressed (level 1: sorted paths and
columns of like numbers shrink several times over), then base64. Rules (a manifest from the
network is hostile):
- each column is inflated to at most the bytes the counts before it allow (path_lengths: 4 per
  file of MAX_FILES; the others from the file and reference counts), and all of them to at most
  MAX_INFLATED, so a small frame cannot make the receiver hold more than a real manifest would;
- every column is checked for its type, its length against the others and every value against
  the bounds `manifest.py` sets; paths must come strictly sorted (the canonical order: no path
  twice); a chunk is numbered in order of first appearance and has one length; the generation id
  must be the one the content gives. Any failure raises ManifestError.
- only manifests whose hashes are hex digests have this form (every scanned or decoded one).
"""

from __future__ import annotations

import base64
import binascii
import sys
import zlib
from array import array
from typing import Any

from lanscatter.core.chunking import Chunking, sizes_problem
from lanscatter.core.errors import ManifestError
from lanscatter.core.file_table import HASH_BYTES, Columns, FileTable, HashTable
from lanscatter.core.manifest import (
    MAX_CHUNK_SIZE,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_PATH_BYTES,
    Manifest,
    check_counts,
    check_relpath,
    decode_chunking,
    manifest_from_dict,
    show_path,
)

WIRE_FORMAT = 3
# What all the columns of one manifest may inflate to: a million files with 100-byte paths and a
# chunk each take about 170 MB; a hostile frame gets no more than this out of a receiver.
MAX_INFLATED = 512 * 2**20
_BIG_ENDIAN = sys.byteorder == "big"


def _b64(values: array[int] | bytes) -> bytes:
    if isinstance(values, array) and _BIG_ENDIAN:
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(zlib.compress(values, 1))


def to_wire(m: Manifest) -> dict[str, Any]:
    """The manifest in format 3 (see the module header), each column base64 as bytes (ASCII):
    `protocol.encode` writes them as JSON texts, and `protocol.encode_pieces` puts them in a
    frame as they are (a text of each would be a copy of some 57 MB at a million files)."""
    c = m.files.columns
    if c.hashes.blob is None:
        raise ManifestError("a manifest whose chunk hashes are not hex digests has no wire form")
    path_lengths, counts = _steps(c.path_ends), _steps(c.ref_ends)
    return {
        "format": WIRE_FORMAT, "generation": m.generation, "chunking": m.chunking_kind, "chunk_size": m.chunk_size,
        "dirs": list(m.dirs), "paths": _b64(c.paths), "path_lengths": _b64(path_lengths),
        "sizes": _b64(c.sizes), "mtimes": _b64(c.mtimes), "executable": _b64(c.executable), "counts": _b64(counts),
        "hashes": _b64(c.hashes.blob), "refs": _b64(c.refs), "lengths": _b64(c.lengths),
    }


def _steps(ends: array[int]) -> array[int]:
    """Each item's length from where each one ends."""
    out, previous = array("I"), 0
    for end in ends:
        out.append(end - previous)
        previous = end
    return out


def decode_manifest(data: Any) -> Manifest:
    """A manifest in either format from untrusted input, fully validated; raises ManifestError."""
    if isinstance(data, dict) and data.get("format") == WIRE_FORMAT:
        return manifest_from_wire(data)
    return manifest_from_dict(data)


class _Budget:
    """What the columns of one manifest may inflate to, in all."""

    def __init__(self, most: int) -> None:
        self.left = most


def _column(data: dict[str, Any], name: str, typecode: str, most: int, budget: _Budget) -> array[int]:
    """Column `name` of at most `most` bytes (and what is left of `budget`)."""
    most = min(most, budget.left)
    text = data[name]
    if not isinstance(text, (str, bytes)):       # (bytes: a manifest made here, `to_wire`)
        raise ManifestError(f"malformed manifest: {name} must be text")
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(base64.b64decode(text, validate=True), most)
    except (binascii.Error, zlib.error):
        raise ManifestError(f"malformed manifest: {name} is not compressed base64") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise ManifestError(f"malformed manifest: {name} is cut short or longer than its counts allow")
    budget.left -= len(raw)
    out = array(typecode)
    if len(raw) % out.itemsize:
        raise ManifestError(f"malformed manifest: {name} is not a whole number of values")
    out.frombytes(raw)
    if _BIG_ENDIAN:
        out.byteswap()
    return out


def manifest_from_wire(data: dict[str, Any]) -> Manifest:
    """Decode and fully validate a format-3 manifest from untrusted input; raises ManifestError."""
    try:
        chunking = decode_chunking(data["chunking"], data["chunk_size"])
        raw_dirs = data["dirs"]
        if not isinstance(raw_dirs, list):
            raise ManifestError("malformed manifest: dirs must be a list")
        budget = _Budget(MAX_INFLATED)
        path_lengths = _column(data, "path_lengths", "I", 4 * MAX_FILES, budget)
        n = len(path_lengths)
        check_counts(n, len(raw_dirs), 0)
        dirs = {check_relpath(d) for d in raw_dirs}
        path_ends = array("q", [0]) * n
        end = 0
        for i, length in enumerate(path_lengths):
            if not 0 < length <= MAX_PATH_BYTES:
                raise ManifestError("malformed manifest: a path length out of bounds")
            end += length
            path_ends[i] = end
        del path_lengths
        paths = bytes(_column(data, "paths", "B", end, budget))
        if end != len(paths):
            raise ManifestError("malformed manifest: path lengths do not add up to the paths")
        sizes, mtimes = _column(data, "sizes", "q", 8 * n, budget), _column(data, "mtimes", "q", 8 * n, budget)
        executable = bytes(_column(data, "executable", "B", n, budget))
        counts = _column(data, "counts", "I", 4 * n, budget)
        if not len(sizes) == len(mtimes) == len(executable) == len(counts) == n:
            raise ManifestError("malformed manifest: its columns list different numbers of files")
        ref_ends = array("q", [0]) * n
        end = 0
        for i, count in enumerate(counts):
            end += count
            ref_ends[i] = end
            check_counts(0, 0, end)
        del counts
        refs, lengths = _column(data, "refs", "I", 4 * end, budget), _column(data, "lengths", "q", 8 * end, budget)
        blob = bytes(_column(data, "hashes", "B", HASH_BYTES * end, budget))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ManifestError(f"malformed manifest: {show_path(str(exc))}") from None
    if not len(refs) == len(lengths) == end:
        raise ManifestError("malformed manifest: chunk references and counts do not add up")
    if len(blob) % HASH_BYTES:
        raise ManifestError("malformed manifest: hashes are not a whole number of 32-byte hashes")
    table = FileTable(Columns(paths, path_ends, sizes, mtimes, executable, ref_ends, refs, lengths,
                              HashTable(blob, None)))
    check_table(table, chunking, dirs)
    manifest = Manifest(chunking.size, table, tuple(sorted(dirs)), chunking.kind)
    claimed = data.get("generation")
    if claimed and claimed != manifest.generation:
        raise ManifestError("manifest generation id does not match its content")
    return manifest


def check_table(table: FileTable, chunking: Chunking, dirs: set[str]) -> None:
    """A table of files checked as a whole manifest is: its chunks (`_check_chunks`), then its
    files against each other and `dirs` (`_check_files`, which adds the parents of files to
    `dirs`); raises ManifestError."""
    _check_chunks(table, chunking)
    _check_files(table, chunking, dirs)


def _check_chunks(table: FileTable, chunking: Chunking) -> None:
    """Chunks numbered in order of first appearance, each used, each hash once, each with one
    length in bounds."""
    c = table.columns
    first = array("q")
    for d, length in zip(c.refs, c.lengths, strict=True):
        if not 1 <= length <= MAX_CHUNK_SIZE * 4:
            raise ManifestError("malformed manifest: a chunk length out of bounds")
        if d == len(first):
            first.append(length)
        elif d > len(first):
            raise ManifestError("malformed manifest: chunks not numbered in order of first appearance")
        elif first[d] != length:
            raise ManifestError(f"chunk {c.hashes[d][:12]} listed with two different sizes")
    if len(first) != len(c.hashes):
        raise ManifestError("malformed manifest: a chunk hash no file refers to")
    if not c.hashes.distinct():           # (a chunk's number is found by its hash: `HashTable.find`)
        raise ManifestError("malformed manifest: a chunk hash listed twice")


def _check_files(table: FileTable, chunking: Chunking, dirs: set[str]) -> None:
    """Each path safe and in strictly increasing order, each size, mtime, flag and chunking sound;
    the parents of every file are added to `dirs` (as `build_manifest` does), and no path is both
    a file and a directory (which also refuses a file below a file)."""
    c = table.columns
    previous = ""
    for i in range(len(table)):
        try:
            path = c.paths[(c.path_ends[i - 1] if i else 0):c.path_ends[i]].decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError("malformed manifest: a path that is not UTF-8") from None
        check_relpath(path)
        if i and not previous < path:
            raise ManifestError(f"manifest paths not in strictly increasing order at '{show_path(path)}'")
        previous = path
        size = c.sizes[i]
        if not 0 <= size <= MAX_FILE_SIZE or c.executable[i] > 1:
            raise ManifestError(f"bad size or executable flag for '{show_path(path)}'")
        span = table.ref_range(i)
        if (problem := sizes_problem(chunking, size, tuple(c.lengths[span.start:span.stop]))) is not None:
            raise ManifestError(f"'{show_path(path)}': {problem}")
        parent = path.rpartition("/")[0]
        while parent:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    check_counts(0, len(dirs), 0)
    for i in range(len(table)):
        if table.path(i) in dirs:
            raise ManifestError(f"manifest lists '{show_path(table.path(i))}' both as file and as directory")

