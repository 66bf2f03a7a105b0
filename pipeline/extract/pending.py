"""Units an endpoint failure left unanswered: pending, never rejected.

A connection error, a timeout or a 5xx after the retries says nothing about the clip or pair asked; stored as a
reject it would vanish from the benchmark once the stage's manifest is fresh. So a stage that has any such unit ends
incomplete (IncompleteStageError, no manifest), naming the endpoint and how many units are pending; the answers it
did get are in the LLM cache, so the next run asks exactly the pending ones.
"""

from __future__ import annotations

from collections import Counter

from benchmark.errors import IncompleteStageError
from pipeline.extract.client import INFRA_ERRORS
from pipeline.extract.records import Failure

__all__ = ["is_pending", "stop_if_pending"]


def is_pending(result: object) -> bool:
    """A Failure of the endpoint (not of the unit): the unit is to be asked again, never rejected."""
    return isinstance(result, Failure) and result.reason in INFRA_ERRORS


def stop_if_pending(stage: str, rejects: list[dict], n_units: int, unit: str, backend) -> None:
    """Raise IncompleteStageError when any reject row is an endpoint failure (rows: {"key", "reason", "detail"});
    `unit`: what a key names, plural ("clips", "pairs"); `backend`: the stage's (only an LLM's client fails so)."""
    failed = [r for r in rejects if r["reason"] in INFRA_ERRORS]
    if not failed:
        return
    client = getattr(backend, "client", None)
    endpoint = client.endpoint if client is not None else "the LLM endpoint"
    pending = {r["key"] for r in failed}
    reasons = ", ".join(f"{r} {n}" for r, n in Counter(r["reason"] for r in failed).most_common())
    down = client.down if client is not None and client.down else ""
    if not down:  # a Ray worker's client: its reason rides on the reply's detail
        down = next((r["detail"].split("; the endpoint was ", 1)[1] for r in failed if "; the endpoint was " in r["detail"]), "")
    last = failed[-1]["detail"]
    answered = client.stats.get("answered", 0) if client is not None else 0
    raise IncompleteStageError(
        f"{stage}: the LLM endpoint {endpoint} failed ({reasons}; {down or last}); {len(pending)} of {n_units} {unit} "
        f"are pending, not rejected: rerun {stage} to ask exactly those (the {answered} answers of this run are cached)")
