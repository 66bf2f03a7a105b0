"""The card stage: render the release's data card (benchmark.card.write_card) into the release folder and copy it to
the cards folder (`release.cards_dir`, relative paths beside the releases folder: `data_cards/` of the repository
for make's defaults, never the current folder of a build written elsewhere).

Its own step, so that the card's template and wording reach it alone: editing them reruns nothing that reads the
release's data."""

from __future__ import annotations

from pathlib import Path

from benchmark.card import write_card
from benchmark.hashing import sha256_file
from pipeline.contract import released_stages

__all__ = ["run", "cards_dir"]


def cards_dir(releases: Path, setting: str) -> Path:
    """Where card copies go: `setting` as given when absolute, else beside the releases folder."""
    p = Path(setting or "data_cards")
    return p if p.is_absolute() else Path(releases).absolute().parent / p


def run(ctx) -> dict:
    target = ctx.release_dir()
    out = cards_dir(ctx.releases, str(ctx.section("release").get("cards_dir") or ""))
    run = ctx.open_stage("card", {"cards_dir": str(out)})
    copy = out / f"{target.name}.md"
    if run.fresh() and (target / "README.md").exists() and copy.exists() and sha256_file(copy) == sha256_file(target / "README.md"):
        return run.previous() or {}
    card = write_card(target, out, stage_order=released_stages())
    run.write_json("card.json", {"release": target.as_posix(), "copy": copy.as_posix(), "sha256": sha256_file(card)})
    return run.finish({"kept": 1}, extra={"release": target.name})
