"""The whole run, projected from a sample's ratios and the corpus's size.

Per clip, from the sample of the user's corpus: LLM requests of extract (categorise in batches + one per animal clip,
retries included), CPU seconds of read and measure (this process and its workers), wall seconds of the whole-table
stages (split, pairs: rules), build bytes; comparison pairs per clip (write: one request per pair). Per request:
prompt and reply tokens (extract: the sample; write: the demo-truth run, whose pairs the sample does not write).
The rate: the answers per second the endpoint gave at the concurrency its adaptive limit settled at. The index stage
(audio embeddings) is not sampled: docs/scale.md gives its cost per clip.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

__all__ = ["Ratios", "project", "projection_table", "NODE_CORES", "NODE_USEFUL"]

NODE_CORES = 32
NODE_USEFUL = 0.8  # of a node's cores doing work (Ray overhead, stragglers, I/O): docs/scale.md's assumption


@dataclass(frozen=True)
class Ratios:
    clips: int  # in the sample
    animal_share: float
    pairs_per_clip: float
    extract_requests_per_clip: float
    extract_tokens_in_per_request: float
    extract_tokens_out_per_request: float
    write_requests_per_pair: float
    write_tokens_in_per_request: float
    write_tokens_out_per_request: float
    answers_per_s: float | None  # the endpoint's rate (None: no LLM)
    cpu_s_per_clip: dict  # stage -> CPU s per clip (read, measure) or wall s (whole-table stages)
    build_bytes_per_clip: float


def project(r: Ratios, clips: int) -> dict:
    """Requests, tokens and hours per LLM stage; CPU-hours; disk."""
    ext_req = r.extract_requests_per_clip * clips
    wr_req = r.pairs_per_clip * r.write_requests_per_pair * clips
    llm = {
        "extract": {"requests": ext_req, "tokens_in": ext_req * r.extract_tokens_in_per_request,
                    "tokens_out": ext_req * r.extract_tokens_out_per_request},
        "write": {"requests": wr_req, "tokens_in": wr_req * r.write_tokens_in_per_request,
                  "tokens_out": wr_req * r.write_tokens_out_per_request},
    }
    for v in llm.values():
        v["hours"] = v["requests"] / r.answers_per_s / 3600 if r.answers_per_s else None
    cpu_h = sum(r.cpu_s_per_clip.values()) * clips / 3600
    cores = os.cpu_count() or 1
    return {"clips": clips, "llm": llm, "cpu_hours": cpu_h, "cpu_hours_by_stage": {k: v * clips / 3600 for k, v in r.cpu_s_per_clip.items()},
            "hours_here": cpu_h / cores, "cores_here": cores, "hours_per_node": cpu_h / (NODE_CORES * NODE_USEFUL),
            "build_gb": r.build_bytes_per_clip * clips / 1e9, "ratios": asdict(r)}


def _n(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else (f"{x / 1e3:.1f} k" if x >= 1e3 else f"{x:.0f}")


def _h(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f} h" if x >= 1 else f"{x * 60:.1f} min")


def projection_table(p: dict) -> str:
    r = p["ratios"]
    rate = f"{r['answers_per_s']:.2f} answers/s" if r["answers_per_s"] else "no LLM"
    lines = ["| stage | requests | tokens in / out | hours at the measured rate |", "|---|---|---|---|"]
    for stage, v in p["llm"].items():
        lines.append(f"| {stage} (LLM) | {_n(v['requests'])} | {_n(v['tokens_in'])} / {_n(v['tokens_out'])} | {_h(v['hours'])} |")
    by = ", ".join(f"{k} {_h(v)}" for k, v in p["cpu_hours_by_stage"].items())
    total_llm = sum(v["hours"] or 0 for v in p["llm"].values())
    lines += [
        "",
        f"- ratios from the sample of {r['clips']} clips: animal share {r['animal_share']:.0%}, {r['pairs_per_clip']:.2f} "
        f"comparison pairs per clip, {r['extract_requests_per_clip']:.2f} extract requests per clip, "
        f"{r['extract_tokens_in_per_request']:.0f} / {r['extract_tokens_out_per_request']:.0f} tokens in / out per extract "
        f"request, {r['write_tokens_in_per_request']:.0f} / {r['write_tokens_out_per_request']:.0f} per write request; "
        f"endpoint rate {rate}",
        f"- LLM: {_h(total_llm) if r['answers_per_s'] else '-'} in all at that rate",
        f"- CPU (read, measure, whole-table stages; not the index: see docs/scale.md): {p['cpu_hours']:.1f} CPU-h ({by}); "
        f"{_h(p['hours_here'])} on this machine's {p['cores_here']} cores, {_h(p['hours_per_node'])} per {NODE_CORES}-core node "
        f"({NODE_USEFUL:.0%} of its cores useful)",
        f"- disk for the build (build/<corpus id>/, without the index): {p['build_gb']:.2f} GB",
    ]
    return "\n".join(lines)
