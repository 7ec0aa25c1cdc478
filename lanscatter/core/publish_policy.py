"""When the origin publishes, and what it refuses to publish (pure: no I/O, no clock).

Publishing modes (per origin, `--publish` on the master, `publish:` in the site tree):
- `on-change`: publish what the source holds once nothing in it changed for `settle` seconds (the
  default for a plain folder);
- `on-switch`: the source is a symlink to a release folder; publish when the link is switched to
  another folder (the default for a symlink source), never while a release is written;
- `manual`: publish only when told (`lanscatter publish`), and what the source holds at start.
`lanscatter publish` works in every mode.

Guards: a scan is refused (nothing published, the hosts keep what they have) when the source is
empty, or when it would delete more than `MAX_SHRINK` of the files of the last published version;
`allow_shrink` lets both through. The first version of an origin is refused only when empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanscatter.core.file_table import pair_paths
from lanscatter.core.manifest import Manifest

PUBLISH_MODES = ("on-change", "on-switch", "manual")
DEFAULT_SETTLE_S = 5.0
MAX_SHRINK = 0.5               # share of the last version's files a publish may delete unasked
_SHRINK_HINT = ("check the source (an unmounted disk, a wrong path?); if the change is meant, publish "
                "with `lanscatter publish --allow-shrink`, or start the master with --allow-shrink")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a scan was not published, in the words the operator sees."""

    reason: str
    hint: str


def default_mode(source_is_link: bool) -> str:
    """No surprises: a folder written in place settles first; a release symlink publishes on switch."""
    return "on-switch" if source_is_link else "on-change"


def check_publish(last: Manifest | None, new: Manifest, *, allow_shrink: bool) -> Refusal | None:
    """None when `new` may replace `last` (the last published version, None before the first)."""
    if allow_shrink:
        return None
    if not new.files:
        what = f"would delete all {len(last.files)} files of the published version" if last and last.files \
            else "has nothing to publish"
        return Refusal(f"the source is empty: publishing it {what} on every host", _SHRINK_HINT)
    if last is None or not last.files:
        return None
    gone = sum(1 for _, _, j in pair_paths(last.files, new.files) if j is None)
    if gone > MAX_SHRINK * len(last.files):
        return Refusal(f"publishing the source would delete {gone} of the {len(last.files)} files of the "
                       f"published version (more than {MAX_SHRINK:.0%})", _SHRINK_HINT)
    return None
