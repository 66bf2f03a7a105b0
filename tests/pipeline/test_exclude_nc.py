"""--exclude-nc: nothing the release ships comes from a non-commercial clip, the audio index included."""

from __future__ import annotations

import shutil

import pandas as pd

from benchmark.release_io import load_release
from models.retrieval import AudioIndex
from pipeline.stages.release import release_stage


def test_exclude_nc_leaves_no_non_commercial_clip_in_the_release_or_its_index(contract, tmp_path):
    """The demo build, with its clip table changed so that every clip an item uses is CC BY and half the clips no
    item uses are CC BY-NC: excluding them leaves the items (and their balance) as they are, so what differs is the
    shipped index alone."""
    build = tmp_path / "demo"
    shutil.copytree(contract["tmp"] / "build" / "demo", build)
    clips = pd.read_parquet(build / "read" / "clips.parquet")
    items = pd.read_parquet(build / "filter" / "items.parquet")
    used = {c for cids in items["clip_ids"] for c in cids}
    full = AudioIndex.load(build / "index" / "audio_index")
    nc = sorted(set(full.clip_ids) - used)[::2]
    assert len(nc) >= 2, "the demo index should hold clips no item uses"  # the 200-clip build leaves a few
    clips.loc[clips["clip_id"].isin(used), ["license", "license_kind"]] = ["https://creativecommons.org/licenses/by/4.0/", "cc-by"]
    clips.loc[clips["clip_id"].isin(nc), ["license", "license_kind"]] = ["https://creativecommons.org/licenses/by-nc/4.0/", "cc-by-nc"]
    clips.to_parquet(build / "read" / "clips.parquet", index=False)
    items["licenses"] = [[] for _ in range(len(items))]  # the release fills each item's licences from its clips
    items.to_parquet(build / "filter" / "items.parquet", index=False)

    params = {"version": "1.0.0", "exclude_nc": True, "cards_dir": str(tmp_path / "cards")}
    rel = load_release(release_stage(build, tmp_path / "releases", "demo-no-nc", params, contract["tmp"] / "build" / "wiki",
                                     quiet=True))
    shipped = AudioIndex.load(rel.audio_index_dir)
    all_nc = set(clips.loc[clips["license_kind"] == "cc-by-nc", "clip_id"])  # ours and the demo's own unused NC clips
    assert set(nc) <= all_nc and not all_nc & used
    assert set(shipped.clip_ids) == set(full.clip_ids) - all_nc  # no caption or embedding of an NC clip; the rest stay
    row = {c: i for i, c in enumerate(full.clip_ids)}
    for j, cid in enumerate(shipped.clip_ids):  # the same clips' embeddings and captions, in the index's order
        assert (shipped.retrieval_embeddings[j] == full.retrieval_embeddings[row[cid]]).all()
        assert (shipped.inject_embeddings[j] == full.inject_embeddings[row[cid]]).all()
        assert shipped.captions[j] == full.captions[row[cid]]
    assert [row[c] for c in shipped.clip_ids] == sorted(row[c] for c in shipped.clip_ids)
    assert "exclude_nc" in shipped.models["subset"] and rel.manifest["exclude_nc"] is True
    attribution = pd.read_csv(rel.path / "ATTRIBUTION.csv")
    assert not all_nc & set(attribution["clip_id"])
    assert not (build / "release" / ".audio_index_no_nc").exists()  # the filtered copy is not left behind
