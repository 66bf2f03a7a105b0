"""--exclude-nc: nothing the release ships comes from a non-commercial clip, the audio index included."""

from __future__ import annotations

import pandas as pd

from benchmark.release_io import load_release
from models.retrieval import AudioIndex
from pipeline.stages.release import release_stage


def test_exclude_nc_leaves_no_non_commercial_clip_in_the_release_or_its_index(contract, tmp_path):
    build = contract["tmp"] / "build" / "demo"
    clips = pd.read_parquet(build / "read" / "clips.parquet", columns=["clip_id", "license_kind"])
    nc = set(clips.loc[clips["license_kind"] == "cc-by-nc", "clip_id"])
    full = AudioIndex.load(build / "index" / "audio_index")
    assert nc & set(full.clip_ids), "the demo index should hold some non-commercial clips for this test to mean anything"

    params = {"version": "1.0.0", "exclude_nc": True, "cards_dir": str(tmp_path / "cards")}
    rel = load_release(release_stage(build, tmp_path / "releases", "demo-no-nc", params, contract["tmp"] / "build" / "wiki",
                                     quiet=True))
    shipped = AudioIndex.load(rel.audio_index_dir)
    assert not nc & set(shipped.clip_ids)
    assert set(shipped.clip_ids) == set(full.clip_ids) - nc  # every commercial clip stays searchable
    row = {c: i for i, c in enumerate(full.clip_ids)}
    for j, cid in enumerate(shipped.clip_ids[:20]):  # the rows are the same clips' embeddings and captions
        assert (shipped.retrieval_embeddings[j] == full.retrieval_embeddings[row[cid]]).all()
        assert shipped.captions[j] == full.captions[row[cid]]
    attribution = pd.read_csv(rel.path / "ATTRIBUTION.csv")
    assert not nc & set(attribution["clip_id"]) and (attribution["license_kind"] != "cc-by-nc").all()
    assert "exclude_nc" in shipped.models["subset"]
