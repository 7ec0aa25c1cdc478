"""Problems found in a site-tree file, as values: collected first, reported together.

Each problem has a position (1-based line and column) and a stable code, and prints as
`FILE:LINE:COL: error: message [code]` (or `warning:`), the form editors and CI logs turn into links.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lanscatter.core.errors import LanscatterError


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a value starts in the file; 1-based like editors count."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    col: int
    code: str
    message: str
    severity: str = "error"     # "error" | "warning": a warning is printed, never fails a load

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message} [{self.code}]"


class TopologyError(LanscatterError):
    """The site-tree file has problems; `str()` is one formatted line per problem, in file order."""

    exit_code = 1
    preformatted = True

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.file, p.line, p.col, p.code)))
        count = len(self.problems)
        super().__init__(
            "\n".join(str(p) for p in self.problems),
            hint=f"{count} problem{'s' if count != 1 else ''}; see docs/topology.md for the file format",
        )


class ProblemLog:
    """Collects problems for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, pos: Pos, code: str, message: str) -> None:
        self.problems.append(Problem(self.file, pos.line, pos.col, code, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise TopologyError(self.problems)

