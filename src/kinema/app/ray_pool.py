"""Batch work on a Ray cluster: the one place kinema connects to Ray and spreads work over it.

``--ray`` runs a command's batch (videos to index, spans to propagate, shots to film) here
instead of one after another in this process, with the same functions: :func:`map_tasks`
for work that loads nothing (a Ray task per job), :func:`map_actors` for work that needs a
model loaded once (a pool of actors, each holding what ``make()`` returns). Both yield
``(job, result)`` in the order the jobs finish, or in the jobs' order with ``ordered``.
The cluster is ``$KINEMA_RAY`` (``HOST:PORT`` of a head started with ``ray start --head``),
else a local one for this process; the workers must see the same files at the same paths.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import Generic, TypeVar

from kinema.core.errors import KinemaError
from kinema.core.extras import require

ADDRESS = "KINEMA_RAY"
"""The environment variable naming the cluster's address."""

J = TypeVar("J")
R = TypeVar("R")
S = TypeVar("S")


class RayClusterError(KinemaError, ConnectionError):
    """The Ray cluster cannot be reached, or lost a worker."""


def connect() -> ModuleType:
    """The ``ray`` module, connected: to ``$KINEMA_RAY``'s cluster, else to a local cluster
    started for this process; as it is when this process is connected already."""
    ray = require("ray", "ray", feature="--ray")
    if ray.is_initialized():
        return ray
    address = os.environ.get(ADDRESS) or None
    if address is not None:
        _check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise _cluster_error(address, exc) from exc
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes of Ray's retries, when nothing listens at ``address``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local": Ray finds the cluster itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise _cluster_error(address, exc, answered=False) from exc


def _cluster_error(address: str | None, exc: BaseException, *,
                   answered: bool = True) -> RayClusterError:
    """One line saying which cluster could not be reached, why, and what to do: start a head
    where nothing ``answered``, else match its Ray and its token."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if address is None:
        return RayClusterError(f"cannot start a local Ray cluster: {why}",
                               hint=f"check free memory and space in /tmp, or set {ADDRESS} to "
                                    "a running cluster's HOST:PORT")
    if not answered:
        return RayClusterError(f"cannot connect to the Ray cluster at {address}: {why}",
                               hint="start one there with: ray start --head --port 6379 (and set "
                                    f"{ADDRESS}=HOST:6379), or unset {ADDRESS} for a local cluster")
    return RayClusterError(f"cannot join the Ray cluster at {address}: {why}",
                           hint="use the Ray and Python versions the cluster runs; where it asks "
                                "for a token, set RAY_AUTH_MODE=token here too, with its token in "
                                "~/.ray/auth_token (ray get-auth-token on the head)")


def map_tasks(work: Callable[[J], R], jobs: Sequence[J], *,
              ordered: bool = False) -> Iterator[tuple[J, R]]:
    """``work(job)`` for each job, a Ray task each; ``(job, result)`` as they finish (in the
    jobs' order with ``ordered``). Closing the iterator cancels the tasks not yet done; no
    jobs, no cluster."""
    if not jobs:
        return
    ray = connect()
    task, shared = ray.remote(_call), ray.put(work)  # the work (and what it binds) sent once
    refs = {task.remote(shared, job): k for k, job in enumerate(jobs)}
    pending = list(refs)
    try:
        while pending:
            ready = pending[:1] if ordered else ray.wait(pending, num_returns=1)[0]
            (ref,) = ready
            with _worker_errors():
                result = ray.get(ref)
            pending.remove(ref)
            yield jobs[refs[ref]], result
    finally:
        for ref in pending:
            ray.cancel(ref)


def stream(work: Callable[..., Iterator[R]], *args: object, gpu: bool = False) -> Iterator[R]:
    """The items of ``work(*args)``, a generator run in one Ray task (with a GPU of its own when
    ``gpu`` and the cluster has GPUs), as they come. Closing the iterator cancels the task."""
    ray = connect()
    gpus = 1 if gpu and ray.cluster_resources().get("GPU", 0) else 0
    task = ray.remote(_items).options(num_returns="streaming", num_gpus=gpus)
    items = task.remote(work, *args)
    try:
        with _worker_errors():
            for ref in items:
                yield ray.get(ref)
    finally:
        with suppress(Exception):  # finished already, or the cluster has gone
            ray.cancel(items)


def _items(work: Callable[..., Iterator[R]], *args: object) -> Iterator[R]:
    """A streaming Ray task's body."""
    yield from work(*args)


def _call(work: Callable[[J], R], job: J) -> R:
    """A Ray task's body."""
    return work(job)


class _Holder(Generic[S, J, R]):
    """An actor's body: ``make()``'s result, loaded once, and the work done with it."""

    def __init__(self, make: Callable[[], S], work: Callable[[S, J], R]) -> None:
        self.state = make()
        self.work = work

    def call(self, index: int, job: J) -> tuple[int, R]:
        return index, self.work(self.state, job)


def map_actors(make: Callable[[], S], work: Callable[[S, J], R], jobs: Iterable[J], *,
               ordered: bool = False, gpu: bool = False,
               most: int | None = None) -> Iterator[tuple[J, R]]:
    """``work(state, job)`` for each job on a pool of actors, each holding its own
    ``state = make()`` (a model loaded once); ``(job, result)`` as they finish (in the jobs'
    order with ``ordered``). As many actors as free CPUs (at ``most`` as many); with ``gpu``,
    on a cluster with GPUs, one actor per GPU, each given its own. ``jobs`` is read as actors
    come free, so it may be endless. The actors end with the iterator."""
    ray = connect()
    from ray.util import ActorPool

    gpus = int(ray.cluster_resources().get("GPU", 0)) if gpu else 0
    slots = gpus or int(ray.available_resources().get("CPU", 1))
    holder = ray.remote(_Holder).options(num_gpus=1 if gpus else 0)
    actors = [holder.remote(make, work) for _ in range(max(1, min(most or slots, slots)))]
    pool, queue = ActorPool(actors), enumerate(jobs)
    running: dict[int, J] = {}
    next_result = pool.get_next if ordered else pool.get_next_unordered
    try:
        with _worker_errors():
            while True:
                while pool.has_free() and (item := next(queue, None)) is not None:
                    running[item[0]] = item[1]
                    pool.submit(lambda actor, job: actor.call.remote(*job), item)
                if not pool.has_next():
                    return
                index, result = next_result()
                yield running.pop(index), result
    finally:
        for actor in actors:
            ray.kill(actor)


@contextmanager
def _worker_errors() -> Iterator[None]:
    """A worker's :class:`KinemaError` raised as itself, a lost worker as one
    :class:`RayClusterError`."""
    from ray.exceptions import RayError, RayTaskError

    try:
        yield
    except RayTaskError as exc:
        if isinstance(exc.cause, KinemaError):
            raise exc.cause from None
        raise
    except RayError as exc:
        raise RayClusterError(f"a Ray worker was lost: {str(exc).splitlines()[0]}",
                              hint="see the cluster's logs (ray logs); a worker may have run "
                                   "out of memory") from exc
