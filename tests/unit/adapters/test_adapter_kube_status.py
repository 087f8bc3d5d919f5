"""Status writes: the tick does not wait, and a slow API server gets only the latest status."""

from __future__ import annotations

import asyncio
import threading

from kubernetes import client

from costscaler.adapters.kube import Kube


class SlowStatusApi:
    """Records status patches; the first one blocks until released (a slow API server)."""

    def __init__(self) -> None:
        self.written: list[tuple[str, dict]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.drained = 0

    def patch_namespaced_custom_object_status(self, *args, **kw: object) -> SlowStatusApi:
        name, body = args[4], args[5]
        assert kw["_preload_content"] is False  # the reply (the whole object) is not parsed
        if not self.written:
            self.entered.set()
            self.release.wait(5)
        self.written.append((name, body["status"]))
        return self  # stands for the unread reply

    def drain_conn(self) -> None:
        self.drained += 1

    def release_conn(self) -> None:
        pass


def test_status_writes_do_not_block_and_keep_only_the_latest_per_object():
    kube = Kube(client.ApiClient(), workers=2)
    api = kube.custom = SlowStatusApi()

    async def ticks() -> None:
        kube.write_status("ml", "a", {"n": 1})  # returns at once; its write is in flight
        await asyncio.get_running_loop().run_in_executor(None, api.entered.wait, 5)
        for n in (2, 3, 4):  # newer statuses while the first write hangs
            kube.write_status("ml", "a", {"n": n})
        kube.write_status("ml", "b", {"n": 1})
        api.release.set()
        await kube.flush_status()

    asyncio.run(ticks())
    mine = [status["n"] for name, status in api.written if name == "a"]
    assert mine == [1, 4]  # 2 and 3 were superseded before they were sent
    assert ("b", {"n": 1}) in api.written
    assert not kube.pending_status and not kube.writing
    assert api.drained == len(api.written)
