"""Which version is where: the report of `lanscatter status FILE`, built from the site masters'
status documents (pure; the documents were decoded with `status.read_status`, so every text in
them is bounded and escaped already).

Per site and host: the version its folder shows (label, generation, age since the origin published
it), the version it stages (label, progress, whether it waits for the tree's commit), and whether
it is behind: not showing the origin's current version (or, after a tree rollback, the version
rolled back to). A host the site master does not list (down, never joined) is shown as such; a
relay is found in the site above when its own site's master (itself) does not answer. Whether a host
is behind is not known when its site's master did not answer (and it is listed nowhere else), nor
for any host when the origin did not: such hosts are `unknown`, not counted as behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lanscatter.core.safe_text import safe_text
from lanscatter.core.status import ActiveVersion, CommitState, NodeStatus, StagedVersion, StatusDoc
from lanscatter.topology.derive import DeploymentPlan

_GEN = 12          # hex digits of a generation shown
_LABEL = 60        # characters of a label shown


def build_report(plan: DeploymentPlan, answers: Mapping[str, StatusDoc | None]) -> dict[str, Any]:
    """The report (a JSON-able dict) from each site's status document (None: no answer)."""
    origin = answers.get(plan.sites[0].name)
    current = origin.published if origin is not None else None
    commit = origin.commit if origin is not None else None
    # What every host should show: the current version, or the one a tree rollback put back.
    target = current.generation if current is not None else None
    if commit is not None and commit.state == "rolled-back" and commit.committed:
        target = commit.committed
    listed = {site: {n.name: n for n in doc.nodes} for site, doc in answers.items() if doc is not None}
    sites: list[dict[str, Any]] = []
    behind: list[str] = []
    unknown: list[str] = []
    for site in plan.sites:
        hosts = []
        for h in plan.hosts:
            if h.site != site.name:
                continue
            where = next((s for s in (site.name, *listed) if h.name in listed.get(s, {})), None)
            node: NodeStatus | None = listed[where][h.name] if where is not None else None
            doc = answers.get(where) if where is not None else None
            active = node.active if node is not None else None
            # Known: listed somewhere, or not listed by its own site's master, which answered (never
            # joined: behind). Nothing is known without the origin's answer.
            known = origin is not None and (node is not None or answers.get(site.name) is not None)
            entry: dict[str, Any] = {
                "name": h.name, "role": h.role, "listed": node is not None,
                "online": node.online if node is not None else False,
                "active": _active(active, doc.time if doc is not None else 0.0),
                "staged": _staged(node.staged if node is not None else None),
                "behind": h.role != "master" and known and target is not None and (
                    active is None or active.generation != target),
            }
            if entry["behind"]:
                behind.append(h.name)
            elif h.role != "master" and not known:
                unknown.append(h.name)
            hosts.append(entry)
        sites.append({"name": site.name, "master": site.master, "answered": answers.get(site.name) is not None,
                      "hosts": hosts})
    return {"current": None if current is None else {"generation": current.generation, "label": current.label,
                                                     "published_ms": current.published_ms},
            "target": target, "commit": _commit(commit), "sites": sites, "behind": behind, "unknown": unknown,
            "hosts": sum(1 for h in plan.hosts if h.role != "master")}


def _active(v: ActiveVersion | None, now: float) -> dict[str, Any] | None:
    if v is None:
        return None
    age = max(0.0, now - v.published_ms / 1000) if v.published_ms and now else None
    return {"generation": v.generation, "label": v.label, "published_ms": v.published_ms,
            "activated": v.activated, "age_s": age}


def _staged(v: StagedVersion | None) -> dict[str, Any] | None:
    return None if v is None else {"generation": v.generation, "label": v.label, "progress": v.progress,
                                   "whole": v.whole}


def _commit(c: CommitState | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"mode": c.mode, "state": c.state, "ready": c.ready, "hosts": c.hosts, "waiting": list(c.waiting),
            "committed": None if not c.committed else {"generation": c.committed, "label": c.committed_label or ""}}


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _name(v: dict[str, Any]) -> str:
    gen = v["generation"][:_GEN]
    return f"{safe_text(v['label'], _LABEL)!r} ({gen})" if v["label"] else gen


def render(report: dict[str, Any]) -> str:
    """The report as text, one line per host."""
    lines = []
    cur = report["current"]
    lines.append("origin: no version published (or no answer)" if cur is None else f"origin: version {_name(cur)}")
    if (c := report["commit"]) is not None:
        if c["state"] == "rolled-back" and c["committed"] is not None:
            lines.append(f"tree rolled back: every host is to show {_name(c['committed'])}")
        else:
            waiting = f"; waiting for {', '.join(c['waiting'])}" if c["waiting"] and c["state"] != "committed" else ""
            lines.append(f"tree commit ({c['mode']} activation): {c['state']}, {c['ready']} of {c['hosts']} "
                         f"hosts joined hold it{waiting}")
    for site in report["sites"]:
        lines.append(f"site {site['name']}" + ("" if site["answered"] else
                                               f" (its master {site['master']} did not answer)"))
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
    behind, unknown = report["behind"], report["unknown"]
    if not report["sites"][0]["answered"]:              # (the tree's first site is the origin's)
        lines.append("hosts behind: not known (the origin did not answer)")
    else:
        lines.append(f"hosts behind: {len(behind)} of {report['hosts']}" + (f" ({', '.join(behind)})" if behind else "")
                     + (f"; not known for {len(unknown)} whose site did not answer ({', '.join(unknown)})"
                        if unknown else ""))
    return "\n".join(lines)
