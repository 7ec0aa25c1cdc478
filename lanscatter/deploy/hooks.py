"""On-synced hooks: a command a host runs when its folder first becomes complete for a generation.

With host activation the hook runs after the switch: a host announces its last chunk only once the
new version is active (`staged_store.StagedStore` switches inside the call that verifies it), and
the hook is fired by that announcement; `$LANSCATTER_FOLDER` then shows the new version.

Deploy hooks ("restart the service once the new build is in place"). The command runs through
`/bin/sh -c` in the orchestrator's working directory (never in the sync folder: a hook that writes
there would change the data set), with the host, site, folder, data set and generation in its
environment, output appended to `<logs>/<host>.hooks.log`. Hooks of one host run one after the
other. A failing hook is logged and not retried: running a deploy step twice is the operator's
decision, not ours.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from lanscatter.deploy.supervisor import ProcessSpec, Supervisor

log = logging.getLogger("lanscatter.up")


@dataclass(frozen=True, slots=True)
class Hook:
    host: str
    site: str
    folder: Path
    command: str


def hook_env(hook: Hook, dataset: str, generation: str) -> dict[str, str]:
    return {"LANSCATTER_HOST": hook.host, "LANSCATTER_SITE": hook.site, "LANSCATTER_FOLDER": str(hook.folder),
            "LANSCATTER_DATASET": dataset, "LANSCATTER_GENERATION": generation}


class HookRunner:
    def __init__(self, supervisor: Supervisor, hooks: dict[str, Hook], dataset: str, log_dir: Path) -> None:
        self.supervisor = supervisor
        self.hooks = hooks
        self.dataset = dataset
        self.log_dir = log_dir
        self._locks = {name: asyncio.Lock() for name in hooks}
        self._tasks: set[asyncio.Task[None]] = set()
        self.results: list[tuple[str, str, int | None]] = []     # (host, generation, exit code)

    def host_synced(self, host: str, generation: str) -> None:
        """`host` just completed `generation`: run its hook (if it has one) in the background."""
        hook = self.hooks.get(host)
        if hook is None:
            return
        task = asyncio.create_task(self._run(hook, generation), name=f"hook {host}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, hook: Hook, generation: str) -> None:
        async with self._locks[hook.host]:
            log_path = self.log_dir / f"{hook.host}.hooks.log"
            spec = ProcessSpec(f"hook:{hook.host}", ("/bin/sh", "-c", hook.command), log_path,
                               env=hook_env(hook, self.dataset, generation))
            log.info("%s: running on-synced hook for generation %s", hook.host, generation[:12])
            code = await self.supervisor.run_once(spec)
            if code is None:
                return                          # stopped with everything else
            self.results.append((hook.host, generation, code))
            if code == 0:
                log.info("%s: on-synced hook done", hook.host)
            else:
                log.warning("%s: on-synced hook failed with exit code %s (not retried; output in %s)",
                            hook.host, code, log_path)

    async def wait(self) -> None:
        """Until the hooks running now have finished."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
