"""Which version is where: the report of `lanscatter status FILE`, built from the site masters'
`/status` documents (pure: the documents are input like any other, every text escaped and
shortened, every number checked before use).

Per site and host: the version its folder shows (label, generation, age since the origin published
it), the version it stages (label, progress, whether it waits for the tree's commit), and whether
it is behind: not showing the origin's current version (or, after a tree rollback, the version
rolled back to). A host the site master does not list (down, never joined) is shown as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lanscatter.core.safe_text import NAME_LIMIT, safe_text
from lanscatter.topology.derive import DeploymentPlan

_GEN = 12          # hex digits of a generation shown
_LABEL = 60


@dataclass(frozen=True, slots=True)
class Shown:
    generation: str
    label: str
    published_ms: int


def _version(doc: object) -> Shown | None:
    if not isinstance(doc, dict):
        return None
    gen, label, ms = doc.get("generation"), doc.get("label", ""), doc.get("published_ms", 0)
    if not isinstance(gen, str) or not gen:
        return None
    ms = ms if isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0 else 0
    return Shown(safe_text(gen, 128), safe_text(label, _LABEL) if isinstance(label, str) else "", ms)


def _number(value: object, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def build_report(plan: DeploymentPlan, answers: Mapping[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The report (a JSON-able dict) from each site's status document (None: no answer)."""
    root = plan.sites[0].name
    origin_doc = answers.get(root) or {}
    current = _version(origin_doc.get("published"))
    commit = origin_doc.get("commit") if isinstance(origin_doc.get("commit"), dict) else None
    # What every host should show: the current version, or the one a tree rollback put back.
    target = current.generation if current is not None else None
    if commit is not None and commit.get("state") == "rolled-back" and isinstance(commit.get("committed"), str):
        target = safe_text(commit["committed"], 128)
    sites: list[dict[str, Any]] = []
    behind: list[str] = []
    listed = {site: _nodes(doc) for site, doc in answers.items()}
    for site in plan.sites:
        doc = answers.get(site.name)
        hosts = []
        for h in plan.hosts:
            if h.site != site.name:
                continue
            # A relay is listed by its own site and by the one above: either tells its version.
            where = next((s for s in (site.name, *listed) if h.name in listed.get(s, {})), None)
            node = listed[where][h.name] if where is not None else None
            now = _number((answers.get(where) or {}).get("time")) if where is not None else 0.0
            active = _version(node.get("active")) if node else None
            staged_doc = node.get("staged") if node else None
            staged = _version(staged_doc)
            entry: dict[str, Any] = {
                "name": safe_text(h.name, NAME_LIMIT), "role": h.role,
                "online": bool(node.get("online")) if node else False, "listed": node is not None,
                "active": None if active is None else {
                    "generation": active.generation, "label": active.label, "published_ms": active.published_ms,
                    "age_s": max(0.0, now - active.published_ms / 1000) if active.published_ms and now else None},
                "staged": None if staged is None or not isinstance(staged_doc, dict) else {
                    "generation": staged.generation, "label": staged.label,
                    "progress": min(1.0, max(0.0, _number(staged_doc.get("progress")))),
                    "whole": staged_doc.get("whole") is True},
            }
            entry["behind"] = h.role != "master" and target is not None and (
                active is None or active.generation != target)
            if entry["behind"]:
                behind.append(entry["name"])
            hosts.append(entry)
        sites.append({"name": site.name, "master": site.master, "answered": doc is not None, "hosts": hosts})
    return {"current": None if current is None else {"generation": current.generation, "label": current.label,
                                                     "published_ms": current.published_ms},
            "target": target, "commit": _commit_view(commit), "sites": sites, "behind": behind,
            "hosts": sum(1 for h in plan.hosts if h.role != "master")}


def _nodes(doc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    raw = (doc or {}).get("nodes")
    out: dict[str, dict[str, Any]] = {}
    for n in raw if isinstance(raw, list) else []:
        if isinstance(n, dict) and isinstance(n.get("name"), str):
            out.setdefault(n["name"], n)
    return out


def _commit_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    state = doc.get("state")
    raw = doc.get("waiting")
    waiting: list[Any] = raw if isinstance(raw, list) else []
    committed = _version({"generation": doc.get("committed"), "label": doc.get("committed_label") or ""})
    return {"state": safe_text(state, 32) if isinstance(state, str) else "?",
            "committed": None if committed is None else {"generation": committed.generation,
                                                         "label": committed.label},
            "mode": safe_text(doc.get("mode"), 16) if isinstance(doc.get("mode"), str) else "?",
            "ready": int(_number(doc.get("ready"))), "hosts": int(_number(doc.get("hosts"))),
            "waiting": [safe_text(w, NAME_LIMIT) for w in waiting[:16] if isinstance(w, str)]}


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _name(v: dict[str, Any]) -> str:
    gen = v["generation"][:_GEN]
    return f"{v['label']!r} ({gen})" if v["label"] else gen


def render(report: dict[str, Any]) -> str:
    """The report as text, one line per host."""
    lines = []
    cur = report["current"]
    if cur is None:
        lines.append("origin: no version published (or no answer)")
    else:
        lines.append(f"origin: version {_name(cur)}")
    if (c := report["commit"]) is not None:
        waiting = f"; waiting for {', '.join(c['waiting'])}" if c["waiting"] and c["state"] != "committed" else ""
        if c["state"] == "rolled-back" and c["committed"] is not None:
            lines.append(f"tree rolled back: every host is to show {_name(c['committed'])}")
        else:
            lines.append(f"tree commit ({c['mode']} activation): {c['state']}, {c['ready']} of {c['hosts']} "
                         f"hosts joined hold it{waiting}")
    for site in report["sites"]:
        lines.append(f"site {site['name']}" + ("" if site["answered"] else f" (its master {site['master']} "
                                                                         "did not answer)"))
        for h in site["hosts"]:
            if not h["listed"]:
                lines.append(f"  {h['name']:16} {h['role']:6} {'not joined' if site['answered'] else '?'}")
                continue
            a, s = h["active"], h["staged"]
            shown = f"active {_name(a)}, {age_text(a['age_s'])} old" if a else "no version active"
            if s is not None:
                shown += (f"; staged {_name(s)} whole, waiting for the commit" if s["whole"]
                          else f"; staging {_name(s)} {s['progress']:.0%}")
            mark = " (behind)" if h["behind"] else ""
            down = "" if h["online"] else " [down]"
            lines.append(f"  {h['name']:16} {h['role']:6} {shown}{mark}{down}")
    behind = report["behind"]
    lines.append(f"hosts behind: {len(behind)} of {report['hosts']}" + (f" ({', '.join(behind)})" if behind else ""))
    return "\n".join(lines)
