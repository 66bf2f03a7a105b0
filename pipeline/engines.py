"""Engines: what maps a per-unit batch function over a stage's units (shards for read, clips for measure and index).

    local   a process pool on this machine (the default; workers=1 runs in this process)
    ray     Ray Data: `ray.data.from_items(units)` → `map_batches(<the same batch function>)` → streamed back to the
            stage, which writes its outputs exactly as with `local`. Connects to $RAY_ADDRESS when set (a running
            cluster), else starts a local Ray bounded to `workers` CPUs.

A batch function is built in the worker by a picklable factory (zero-argument callable), so a model is loaded once
per worker (a Ray actor, or a pool process) and never in the driver: `factory() -> fn`, `fn(units: list) -> list`
(one result per unit, same order; a result is any picklable value). `map_units` yields (unit index, result) as
results arrive, in no fixed order; a stage puts them where they belong (a result store, a row of a scratch file),
so its outputs do not depend on the engine, the number of workers or the arrival order. That is why the
engine is a run option, never part of a stage's freshness key.

Backpressure: the local pool holds at most 2 batches per worker in flight; Ray Data's streaming executor bounds
its own queues (results are consumed as they come, never collected whole).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from benchmark.errors import ConfigError

__all__ = ["ENGINES", "map_units", "PerUnit", "init_ray", "default_workers"]

ENGINES = ("local", "ray")

Factory = Callable[[], Callable[[list], list]]


def default_workers() -> int:
    return os.cpu_count() or 1


def map_units(factory: Factory, units: Sequence[Any], *, engine: str = "local", workers: int | None = None,
              batch_size: int = 8, num_gpus: float = 0.0) -> Iterator[tuple[int, Any]]:
    """Yield (index into units, result) for every unit, computed by `factory()` batch functions on `engine`.

    workers: processes (local) or Ray actors (ray); default: all cores. num_gpus: GPUs per Ray actor (a GPU stage
    with --device cuda asks for 1); the local engine ignores it. batch_size: units per call of the batch function."""
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if not units:
        return iter(())
    workers = max(1, int(workers or default_workers()))
    batch_size = max(1, int(batch_size))
    if engine == "ray":
        return _map_ray(factory, units, workers, batch_size, num_gpus)
    return _map_local(factory, units, workers, batch_size)


@dataclass(frozen=True)
class PerUnit:
    """The factory of a batch function that applies a pure module-level `fn(*unit, *args)` to each unit (a tuple)."""

    fn: Callable[..., Any]
    args: tuple = ()

    def __call__(self) -> Callable[[list], list]:
        return functools.partial(_apply_each, self.fn, self.args)


def _apply_each(fn: Callable[..., Any], args: tuple, units: list) -> list:
    return [fn(*u, *args) for u in units]


# ---- local ---------------------------------------------------------------------------------------------------

_WORKER_FN: Callable[[list], list] | None = None  # the pool process's batch function (built once, by _init_worker)


def _init_worker(factory: Factory) -> None:
    global _WORKER_FN
    _WORKER_FN = factory()


def _call_worker(start: int, units: list) -> tuple[int, list]:
    assert _WORKER_FN is not None, "pool worker not initialised"
    return start, _WORKER_FN(units)


def _batches(units: Sequence[Any], size: int) -> Iterator[tuple[int, list]]:
    for s in range(0, len(units), size):
        yield s, list(units[s:s + size])


def _map_local(factory: Factory, units: Sequence[Any], workers: int, batch_size: int) -> Iterator[tuple[int, Any]]:
    if workers <= 1 or len(units) <= batch_size:
        fn = factory()
        for start, batch in _batches(units, batch_size):
            yield from _check(start, batch, fn(batch))
        return
    with _one_thread_each(), ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                                 initializer=_init_worker, initargs=(factory,)) as pool:
        batches = _batches(units, batch_size)
        pending: dict = {}
        while True:
            while len(pending) < 2 * workers:
                nxt = next(batches, None)
                if nxt is None:
                    break
                pending[pool.submit(_call_worker, *nxt)] = nxt[1]
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                batch = pending.pop(fut)
                start, results = fut.result()
                yield from _check(start, batch, results)


@contextlib.contextmanager
def _one_thread_each() -> Iterator[None]:
    """Pool processes start with one BLAS/OpenMP thread each, as Ray's one-CPU actors do: the workers share the
    cores, and a torch encoder's floats are the same bits on either engine."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _check(start: int, batch: list, results: list) -> Iterator[tuple[int, Any]]:
    if len(results) != len(batch):
        raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} units")
    for j, r in enumerate(results):
        yield start + j, r


# ---- ray -----------------------------------------------------------------------------------------------------

def init_ray(workers: int | None = None) -> None:
    """Connect to $RAY_ADDRESS, or start a local Ray with `workers` CPUs (no dashboard); nothing when already up."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=max(1, int(workers or default_workers())), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)


class _RayBatch:
    """A Ray Data actor: builds the batch function once, then maps pickled units to pickled results."""

    def __init__(self, factory: Factory):
        self.fn = factory()

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        units = [pickle.loads(u) for u in batch["unit"]]
        results = self.fn(units)
        if len(results) != len(units):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(units)} units")
        return {"i": np.asarray(batch["i"]), "result": np.array([pickle.dumps(r) for r in results], dtype=object)}


def _map_ray(factory: Factory, units: Sequence[Any], workers: int, batch_size: int, num_gpus: float) -> Iterator[tuple[int, Any]]:
    import ray

    init_ray(workers)
    ray.data.DataContext.get_current().enable_progress_bars = False  # the stage's own bar counts the units
    ds = ray.data.from_items([{"i": i, "unit": pickle.dumps(u)} for i, u in enumerate(units)],
                             override_num_blocks=max(1, min(len(units), 4 * workers)))
    resources = {"num_cpus": 1} | ({"num_gpus": num_gpus} if num_gpus else {})
    ds = ds.map_batches(_RayBatch, fn_constructor_args=(factory,), batch_size=batch_size, concurrency=workers, **resources)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for i, r in zip(batch["i"], batch["result"]):
            yield int(i), pickle.loads(r)
