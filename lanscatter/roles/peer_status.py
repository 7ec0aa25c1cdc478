"""A peer's own status document (`/status` on its chunk port, its `--json` lines, a standby
gateway's status): the peer as the one node of its document, its holdings and downloads as
bitmaps over the generation's chunk table (empty while a reconcile rebuilds the holdings), and the
version its folder shows and stages."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lanscatter.core.bitmap import Bitmap
from lanscatter.core.signing import published_view
from lanscatter.core.status import NodeStatus, StatusDoc, slots_in_use

if TYPE_CHECKING:
    from lanscatter.roles.peer import PeerNode


def peer_status(node: PeerNode) -> StatusDoc:
    folder = node.folder
    m = folder.manifest
    n = len(m.chunk_table()) if m else 0
    have = Bitmap(n)
    inflight = Bitmap(n)
    rates = node.rates()
    if m is not None and not folder.reconciling:
        index = m.chunk_index()
        if folder.store.manifest is m:
            have = folder.store.have_bitmap()
        for h in node.downloads.inflight:
            if h in index:
                inflight.set(index[h])
    c, o = node.counters, node.opts
    node_status = NodeStatus(
        name=node.name, role=o.role, online=node.connected,
        have=have.count, bitmap=have.encode(), inflight=inflight.encode(),
        downloads=c.downloads, uploads=c.uploads, dl_slots=o.dl_slots, ul_slots=o.ul_slots,
        dl_slots_used=slots_in_use(c.downloads, o.dl_slots), ul_slots_used=slots_in_use(c.uploads, o.ul_slots),
        rx_bytes=c.rx_bytes, tx_bytes=c.tx_bytes, rx_rate=rates[0], tx_rate=rates[1],
        downloaded_chunks=node.downloaded_chunks, local_copies=folder.local_copies,
        active=(active := folder.active_version()), staged=folder.staged_version(active),
    )
    return StatusDoc(
        role=o.role, name=node.name, time=time.time(),
        generation=m.generation if m else None, chunks=n, bytes=m.total_bytes if m else 0,
        synced=folder.complete(), published=published_view(folder.signed, m.generation if m else None),
        active=node_status.active, staged=node_status.staged, nodes=(node_status,), insecure=not node.auth.secure,
        control_rx_bytes=node.control_rx_bytes,
    )
