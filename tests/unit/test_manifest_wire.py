"""The compact manifest: FileTable as a sequence of entries, and format 3 on the wire (round trip,
and every column of a hostile one checked)."""

from __future__ import annotations

import base64
import zlib
from array import array
from typing import Any

import pytest

from lanscatter.core import manifest_wire
from lanscatter.core import protocol as p
from lanscatter.core.chunking import CDC, fixed_sizes
from lanscatter.core.errors import ManifestError
from lanscatter.core.file_table import FileTable, pair_paths, same_entry
from lanscatter.core.handshake import Channel
from lanscatter.core.manifest import MAX_CHUNKS, ChunkLocation, FileEntry, Manifest, build_manifest
from lanscatter.core.manifest_wire import decode_manifest, to_wire
from lanscatter.disk.hashing import hash_bytes

CS = 100
H = [hash_bytes(bytes([i])) for i in range(10)]


def _fe(path: str, size: int, chunks: tuple[str, ...], mtime_ns: int = 1_700_000_000_000_000_000,
        executable: bool = False) -> FileEntry:
    return FileEntry(path, size, mtime_ns, executable, chunks, fixed_sizes(size, CS))


def _manifest() -> Manifest:
    return build_manifest(CS, [
        _fe("b/x", 250, (H[1], H[2], H[3])), _fe("a", 100, (H[1],), executable=True), _fe("empty", 0, ()),
        _fe("b/ünï \"q\"", 150, (H[2], H[4]), mtime_ns=-5), _fe("c/d/e", 100, (H[1],)),
    ], ["void", "b/sub"])


def _wire() -> dict[str, Any]:
    return to_wire(_manifest())


def _read(d: dict[str, Any], name: str, typecode: str = "B") -> array[int]:
    return array(typecode, zlib.decompress(base64.b64decode(d[name])))


def _packed(values: bytes | list[int], typecode: str = "B") -> str:
    raw = values if isinstance(values, bytes) else array(typecode, values).tobytes()
    return base64.b64encode(zlib.compress(raw)).decode()


def _paths(d: dict[str, Any], old: bytes, new: bytes, first_lengths: list[int] | None = None) -> None:
    """Replace `old` by `new` once in the paths column (and the first path lengths, if given)."""
    d["paths"] = _packed(_read(d, "paths").tobytes().replace(old, new, 1))
    if first_lengths is not None:
        lengths = _read(d, "path_lengths", "I")
        d["path_lengths"] = _packed([*first_lengths, *lengths[len(first_lengths):]], "I")


def test_a_table_reads_as_the_entries_it_was_made_of() -> None:
    entries = [_fe("z", 150, (H[0], H[1])), _fe("a", 0, ()), _fe("m", 100, (H[0],), executable=True)]
    table = FileTable.of_entries(entries)
    assert len(table) == 3 and list(table) == entries and table == entries
    assert table[0] == entries[0] and table[-1] == entries[2] and table[1:] == tuple(entries[1:])
    with pytest.raises(IndexError):
        table[3]
    assert not table.is_sorted()
    assert [table.position(path) for path in ("z", "a", "m", "q")] == [0, 1, 2, None]
    # hashes that are not hex digests (made by hand) are kept as they are
    odd = FileTable.of_entries([FileEntry("f", 20, 0, False, ("h1", "h2"), (10, 10))])
    assert odd[0].chunks == ("h1", "h2") and odd.hashes.blob is None


def test_a_manifest_keeps_its_derived_tables() -> None:
    m = _manifest()
    assert [f.path for f in m.files] == sorted(f.path for f in m.files) and m.files.is_sorted()
    assert m.file("b/x") == _fe("b/x", 250, (H[1], H[2], H[3])) and m.file("b") is None
    assert m.chunk_table() == ((H[1], 100), (H[2], 100), (H[3], 50), (H[4], 50))
    assert m.locations()[H[1]] == (ChunkLocation("a", 0, 100), ChunkLocation("b/x", 0, 100),
                                   ChunkLocation("c/d/e", 0, 100))
    assert m.locations()[H[2]] == (ChunkLocation("b/x", 100, 100), ChunkLocation("b/ünï \"q\"", 0, 100))
    assert m.locations().get(H[9], ()) == () and set(m.locations()) == {h for h, _ in m.chunk_table()}
    assert Manifest(CS, tuple(m.files), m.dirs) == m


def test_format_3_round_trips_through_a_frame() -> None:
    m = _manifest()
    msg = p.decode(p.encode(p.ManifestMsg(to_wire(m))).encode())
    assert isinstance(msg, p.ManifestMsg)
    again = decode_manifest(msg.manifest)
    assert again == m and again.generation == m.generation and list(again.files) == list(m.files)
    assert again.dirs == m.dirs and "b/sub" in again.dirs and "c/d" in again.dirs
    assert decode_manifest(m.to_dict()) == m            # format 2 still decodes
    empty = build_manifest(CS, [], [])
    assert decode_manifest(to_wire(empty)) == empty
    cdc = build_manifest(4096, [FileEntry("v", 22415, 0, False, tuple(H[:4]), (1024, 16384, 5000, 7))], [], CDC)
    assert decode_manifest(to_wire(cdc)) == cdc


def test_format_3_is_smaller_than_format_2() -> None:
    m = build_manifest(CS, [_fe(f"d{k // 100:03d}/file-{k:06d}.txt", 2, (H[k % 10],)) for k in range(2000)], [])
    assert len(p.encode(p.ManifestMsg(to_wire(m)))) < 0.7 * len(p.encode(p.ManifestMsg(m.to_dict())))


def _more_hash_bytes(d: dict[str, Any], n: int) -> str:
    return _packed(_read(d, "hashes").tobytes() + bytes(n))


def _out_of_order(d: dict[str, Any]) -> None:
    entries = list(_manifest().files)
    entries[1], entries[3] = entries[3], entries[1]
    d.update(to_wire(Manifest(CS, FileTable.of_entries(entries), ())))


# The manifest: a (1 ref), b/x (3), b/ünï "q" (2), c/d/e (1), empty (0); refs 0 0 1 2 1 3 0.
HOSTILE: dict[str, Any] = {
    "sizes not base64": lambda d: d.update(sizes="!!!!"),
    "sizes not compressed": lambda d: d.update(sizes=base64.b64encode(bytes(40)).decode()),
    "a column cut short": lambda d: d.update(mtimes=base64.b64encode(zlib.compress(bytes(40))[:-3]).decode()),
    "a column of half a value": lambda d: d.update(mtimes=_packed(bytes(41))),
    "a column inflating past its count": lambda d: d.update(mtimes=_packed(bytes(8 * 10**6))),
    "a file less in one column": lambda d: d.update(executable=_packed([0, 1, 0, 0])),
    "path lengths not adding up": lambda d: d.update(path_lengths=_packed([1, 1, 1, 1, 1], "I")),
    "a path length out of bounds": lambda d: d.update(path_lengths=_packed([5000, 3, 11, 5, 5], "I")),
    "paths inflating past their lengths": lambda d: d.update(paths=_packed(b"a" * 10**6)),
    "a path with ..": lambda d: _paths(d, b"a", b"..", [2]),
    "a path not UTF-8": lambda d: _paths(d, b"a", b"\xff"),
    "a negative size": lambda d: d.update(sizes=_packed([-1, 250, 150, 100, 0], "q")),
    "a flag of 2": lambda d: d.update(executable=_packed([2, 0, 0, 0, 0])),
    "sizes not matching chunks": lambda d: d.update(sizes=_packed([99, 250, 150, 100, 0], "q")),
    "a chunk numbered ahead": lambda d: d.update(refs=_packed([1, 0, 1, 2, 1, 3, 0], "I")),
    "a chunk with two sizes": lambda d: d.update(refs=_packed([0, 0, 1, 2, 1, 0, 0], "I")),
    "a hash no file refers to": lambda d: d.update(hashes=_more_hash_bytes(d, 32)),
    "half a hash": lambda d: d.update(hashes=_more_hash_bytes(d, 16)),
    "more references than counted": lambda d: d.update(counts=_packed([1, 3, 2, 1, 1], "I")),
    "too many references": lambda d: d.update(counts=_packed([1, 3, 2, 1, MAX_CHUNKS], "I")),
    "a path twice": lambda d: _paths(d, b"b/x", b"a", [1, 1]),
    "paths out of order": _out_of_order,
    "a file that is a directory": lambda d: d.update(dirs=[*d["dirs"], "a"]),
    "a file below a file": lambda d: _paths(d, b"b/x", b"a/x"),
    "a generation of other content": lambda d: d.update(generation="0" * 24),
    "a column missing": lambda d: d.pop("refs"),
    "a column of the wrong type": lambda d: d.update(lengths=[100]),
    "dirs not a list": lambda d: d.update(dirs="a"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_format_3_manifest_is_refused(name: str) -> None:
    data = _wire()
    assert decode_manifest(dict(data)) == _manifest()
    HOSTILE[name](data)
    with pytest.raises(ManifestError):
        decode_manifest(data)


def test_the_columns_inflate_to_no_more_than_the_bound_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _wire()
    monkeypatch.setattr(manifest_wire, "MAX_INFLATED", 200)
    with pytest.raises(ManifestError, match="longer than its counts allow"):
        decode_manifest(data)


def test_two_tables_pair_by_path_sorted_or_not() -> None:
    a = FileTable.of_entries([_fe("a", 100, (H[1],)), _fe("b", 100, (H[2],)), _fe("d", 0, ())])
    b = FileTable.of_entries([_fe("b", 100, (H[2],)), _fe("c", 100, (H[1],)), _fe("d", 0, (), mtime_ns=7)])
    assert list(pair_paths(a, b)) == [("a", 0, None), ("b", 1, 0), ("c", None, 1), ("d", 2, 2)]
    assert same_entry(a, 1, b, 0) and same_entry(a, 0, b, 1)      # content and metadata, paths aside
    assert not same_entry(a, 2, b, 2) and not same_entry(a, 0, b, 0)
    shuffled = FileTable.of_entries([b[2], b[0], b[1]])
    assert sorted(pair_paths(a, shuffled), key=lambda t: t[0]) == [
        ("a", 0, None), ("b", 1, 1), ("c", None, 2), ("d", 2, 0)]


def test_a_hash_listed_twice_is_refused() -> None:
    """A chunk's number is found by its hash: two numbers for one hash would leave one unfound."""
    data = _wire()
    raw = _read(data, "hashes").tobytes()
    data.update(hashes=_packed(raw[:-32] + raw[:32]))
    with pytest.raises(ManifestError, match="listed twice"):
        decode_manifest(data)


@pytest.mark.parametrize("manifest", [_manifest(), build_manifest(CS, [], [])], ids=["files", "empty"])
def test_a_whole_manifest_frame_made_from_pieces_reads_as_the_message(manifest: Manifest) -> None:
    """The master seals a whole manifest from pieces (its columns as they are, `encode_pieces`):
    the frame opens and decodes to the very message `encode` gives, and the manifest."""
    msg = p.ManifestMsg(to_wire(manifest), statement="the statement \"q\"", signature="c2ln")
    pieces = p.encode_pieces(msg)
    assert any(piece is msg.manifest["hashes"] for piece in pieces)      # not copied
    sender, receiver = Channel(b"k" * 32, sends=b"m", receives=b"p"), Channel(b"k" * 32, sends=b"p", receives=b"m")
    receiver.open(sender.seal(b"an earlier frame"), "the master")
    body = receiver.open(sender.seal_pieces(pieces), "the master")
    assert p.decode(body, "the master", p.MAX_MANIFEST_FRAME) == p.decode(p.encode(msg), "the master",
                                                                          p.MAX_MANIFEST_FRAME)
    got = p.decode(body, "the master", p.MAX_MANIFEST_FRAME)
    assert isinstance(got, p.ManifestMsg) and decode_manifest(got.manifest) == manifest
    assert p.encode_pieces(p.Have("g", ["a"])) == [p.encode(p.Have("g", ["a"])).encode()]


def test_a_column_that_is_not_base64_text_is_not_put_in_a_frame() -> None:
    wire = to_wire(_manifest())
    wire["paths"] = b'A"}'
    with pytest.raises(ValueError, match="paths"):
        p.encode_pieces(p.ManifestMsg(wire))
