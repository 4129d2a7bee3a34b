"""Worker threads for a teach job that Ctrl+C can leave behind.

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits, so a process interrupted
while requests are in flight would still wait for each of them through its timeout and retries (minutes with
the defaults). These workers are daemon threads: `abandon()` cancels the queued tasks, waits a moment for the
running ones (a reply about to arrive is still cached) and lets the process exit; a request still in flight then
is dropped with the process. What its question had already got is cached.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

_STOP = None  # put once per worker: it returns after its current task


class DaemonWorkers:
    """`submit` tasks to `count` daemon threads; `Future`s as `concurrent.futures` gives them."""

    def __init__(self, count: int, name: str):
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._futures: list[Future] = []
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, count))]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._futures.append(future)
        self._tasks.put((future, task, args))
        return future

    def shutdown(self) -> None:
        """Cancel the tasks not started and wait for the running ones to end."""
        self._stop_workers()
        for thread in self._threads:
            thread.join()

    def abandon(self, wait_s: float = 0.0) -> None:
        """Cancel the tasks not started; wait at most `wait_s` seconds in all for the running ones, then return."""
        self._stop_workers()
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _stop_workers(self) -> None:
        for future in self._futures:
            future.cancel()  # a no-op on a running or finished task
        for _ in self._threads:
            self._tasks.put(_STOP)

    def _work(self) -> None:
        while (item := self._tasks.get()) is not _STOP:
            future, task, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = task(*args)
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(error)
            else:
                future.set_result(result)
