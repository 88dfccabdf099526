"""Where a sweep's work runs: in this process, in its threads, in a local process pool, or on a Dask
cluster.

An executor runs ``fn(item)`` for each item, at most :attr:`workers` at a time, and reports each
start and each end (result or exception) to the sweep, which counts runs done, running and failed.

- :class:`InlineExecutor`: one after another in this process (one worker).
- :class:`ThreadExecutor`: ``workers`` threads of this process, each training its batch with one
  intra-op thread (torch releases the GIL inside every operation, so the threads share the cores;
  nothing is started or imported, so a short sweep pays no start-up). Interrupted, it sets a cancel
  event that every run checks before each step, and the runs stop within one epoch, resumable.
- :class:`ProcessExecutor`: a pool of ``workers`` local processes started with ``spawn`` (no
  fork of a process holding torch's threads), each with one torch thread and
  ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning on a shared core).
- :class:`DaskExecutor`: ``dask.distributed`` (``pip install grokinterp[dask]``): a
  ``LocalCluster`` it starts, or an existing cluster given by address or ``Client``. Run folders
  must lie on a filesystem every worker shares.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

import torch

from ..errors import GrokinterpError
from ..training import training_settings

__all__ = ["DaskExecutor", "Executor", "InlineExecutor", "ProcessExecutor", "ThreadExecutor", "WORKER_ENV", "default_workers"]

WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

Started = Callable[[int], None]
Finished = Callable[[int, Any, Optional[BaseException]], None]


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


class Executor(Protocol):
    """Runs ``fn`` over ``items`` with at most ``workers`` in flight; ``started(i)`` when item ``i``
    is handed to a worker, ``finished(i, result, error)`` when it comes back. Executors that run
    ``fn`` in threads of this process call ``fn(item, cancel=event)``."""

    name: str
    workers: int

    def run(self, fn: Callable, items: Sequence, started: Started, finished: Finished) -> None: ...


class InlineExecutor:
    """Each item in turn, in this process."""

    name = "inline"
    workers = 1

    def run(self, fn: Callable, items: Sequence, started: Started, finished: Finished) -> None:
        for i, item in enumerate(items):
            started(i)
            try:
                result = fn(item)
            except Exception as e:  # noqa: BLE001 - the sweep reports it in the item's rows
                finished(i, None, e)
            else:
                finished(i, result, None)


class ThreadExecutor:
    """``workers`` threads of this process (default: every core), one intra-op thread each."""

    name = "threads"

    def __init__(self, workers: int | None = None):
        self.workers = _check_workers(workers)

    def run(self, fn: Callable, items: Sequence, started: Started, finished: Finished) -> None:
        cancel = threading.Event()

        def submit(i: int, done: queue.Queue) -> None:
            future = pool.submit(fn, items[i], cancel=cancel)
            future.add_done_callback(lambda f: done.put((i, None if f.exception() else f.result(), f.exception())))

        # the process-wide settings every batch would set, set once: a batch that ends restores
        # exactly these, never the caller's, while the others still train
        with training_settings(1), ThreadPoolExecutor(max_workers=min(self.workers, max(1, len(items))),
                                                      thread_name_prefix="grokinterp-sweep") as pool:
            try:
                _dispatch(len(items), self.workers, submit, started, finished)
            except BaseException:
                cancel.set()  # the threads stop before their next step; the pool joins them
                raise


def _dispatch(count: int, workers: int, submit: Callable[[int, queue.Queue], None], started: Started,
              finished: Finished) -> None:
    """Hand items ``0 .. count - 1`` to ``submit(i, done)``, at most ``workers`` in flight; each
    item's ``(i, result, error)`` comes back on ``done``. An interrupt or exit (an error that is not
    an ``Exception``) raised by a worker stops the sweep, as it would inline."""
    done: queue.Queue = queue.Queue()
    pending = list(range(count))[::-1]
    in_flight = 0
    while pending or in_flight:
        while pending and in_flight < workers:
            i = pending.pop()
            started(i)
            submit(i, done)
            in_flight += 1
        i, result, error = done.get()
        in_flight -= 1
        if error is not None and not isinstance(error, Exception):
            raise error
        finished(i, result, error)


def init_worker() -> None:
    """Set-up of a pool worker: one intra-op thread (the pool's processes share the cores)."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    """:data:`WORKER_ENV` in the environment while workers start (OpenMP reads it when it loads,
    before any initializer could run), unless the user set those variables; restored after."""
    added = {k: v for k, v in WORKER_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


class ProcessExecutor:
    """A local pool of ``workers`` spawned processes (default: every core)."""

    name = "process"

    def __init__(self, workers: int | None = None):
        self.workers = _check_workers(workers)

    def run(self, fn: Callable, items: Sequence, started: Started, finished: Finished) -> None:
        def submit(i: int, done: queue.Queue) -> None:
            pool.apply_async(fn, (items[i],), callback=lambda r: done.put((i, r, None)),
                             error_callback=lambda e: done.put((i, None, e)))

        with worker_environment():
            pool = multiprocessing.get_context("spawn").Pool(min(self.workers, max(1, len(items))), initializer=init_worker)
        try:
            _dispatch(len(items), self.workers, submit, started, finished)
            pool.close()
        finally:
            pool.terminate()
            pool.join()


class DaskExecutor:
    """Dask distributed: ``cluster`` is ``None`` (start a ``LocalCluster`` of ``workers`` processes,
    one thread each, closed afterwards), a scheduler address or a ``dask.distributed.Client``."""

    name = "dask"

    def __init__(self, cluster: Any = None, workers: int | None = None):
        try:
            import distributed  # the optional extra: imported only when asked for
        except ImportError:
            raise GrokinterpError("executor='dask' needs dask distributed: pip install 'grokinterp[dask]'") from None
        self._distributed = distributed
        self.cluster = cluster
        self.workers = _check_workers(workers)
        if isinstance(cluster, distributed.Client):
            self.workers = max(1, sum(cluster.nthreads().values())) if workers is None else self.workers
        elif cluster is not None and not isinstance(cluster, str):
            raise GrokinterpError(
                f"a Dask cluster is given by its scheduler address (a string) or a dask.distributed.Client, got {type(cluster).__name__}"
            )

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        d = self._distributed
        if isinstance(self.cluster, d.Client):
            yield self.cluster
        elif isinstance(self.cluster, str):
            with d.Client(self.cluster) as client:
                yield client
        else:
            with d.LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                env=dict(WORKER_ENV)) as cluster, d.Client(cluster) as client:
                client.run(init_worker)
                yield client

    def run(self, fn: Callable, items: Sequence, started: Started, finished: Finished) -> None:
        with self._client() as client:
            pending = list(range(len(items)))[::-1]
            futures = self._distributed.as_completed()
            index = {}
            while pending and len(index) < self.workers:
                i = pending.pop()
                started(i)
                f = client.submit(fn, items[i], pure=False)
                index[f.key] = i
                futures.add(f)
            for f in futures:
                i = index.pop(f.key)
                try:
                    result, error = f.result(), None
                except Exception as e:  # noqa: BLE001 - reported in the item's rows
                    result, error = None, e
                finished(i, result, error)
                if pending:
                    j = pending.pop()
                    started(j)
                    g = client.submit(fn, items[j], pure=False)
                    index[g.key] = j
                    futures.add(g)


def _check_workers(workers) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GrokinterpError(f"workers must be a positive integer, got {workers!r}")
    return workers
