"""Text from the network made safe to show: shortened and with control characters escaped.

Names, error texts and any other remote string go through `safe_text` before they reach a log line,
an event, the status document or an error reply: a terminal never receives an escape sequence or a
forged line break from a remote node, and no remote string makes a log line or a status document
larger than the limit. Pure: no I/O.
"""

from __future__ import annotations

NAME_LIMIT = 64          # node names as shown and kept by a master
TEXT_LIMIT = 300         # error texts and other free text from the network

# C0 and C1 controls, DEL, line/paragraph separators and the bidirectional overrides (which can
# make a log line read differently from what it contains).
_UNSAFE = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNSAFE}


def safe_text(value: object, limit: int = TEXT_LIMIT) -> str:
    """`value` as text of at most `limit` characters (plus a short note of what was cut), with
    control characters written as escapes. Costs O(limit), whatever the size of `value`."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except ValueError:          # an integer of more than 4300 digits
            text = f"<{type(value).__name__} too large to show>"
    escaped = text[:limit].translate(_ESCAPES)
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}...({len(text)} chars)"
