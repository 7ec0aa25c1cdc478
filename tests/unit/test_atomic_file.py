"""Files written whole or not at all, by any number of writers at once."""

from __future__ import annotations

import threading
from pathlib import Path

from lanscatter.disk.atomic_file import write_text_atomic


def test_two_writers_of_one_path_never_fail_and_leave_a_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    errors: list[BaseException] = []

    def writer(text: str) -> None:
        try:
            for _ in range(300):
                write_text_atomic(target, text)
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion below)
            errors.append(exc)

    texts = ["a" * 50_000, "b" * 70_000]
    threads = [threading.Thread(target=writer, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:1]
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]     # no temporary file left
