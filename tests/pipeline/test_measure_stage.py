"""The measure stage on a tiny tar built here: outputs, quarantine rows, de-duplication, skip-on-rerun, resume."""

import io
import json
import math
import sqlite3
import tarfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from benchmark.hashing import sha256_bytes
from benchmark.schema import COLUMNS
from pipeline.demo.synth import noise, tone
from pipeline.params import stage_params
from pipeline.stages.measure import PITCH_NOTE_COLUMNS, measure_stage

SR = 48000


def flac(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="FLAC")
    return buf.getvalue()


def write_corpus(root, shard: str, clips: dict[str, bytes]) -> list[dict]:
    """A tar shard of <id>.flac members and the schema.Clip rows that point into it."""
    (root / shard).parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / shard, "w") as tf:
        for cid, data in clips.items():
            info = tarfile.TarInfo(f"{cid}.flac")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    rows = []
    with tarfile.open(root / shard) as tf:
        for m in tf.getmembers():
            cid = m.name[: -len(".flac")]
            data = clips[cid]
            rows.append({
                "clip_id": f"freesound/{cid}", "source": "freesound", "shard": shard, "member": m.name,
                "offset": m.offset_data, "size": m.size, "captions": [f"clip {cid}"], "tags": [], "title": cid,
                "description": "", "license": "", "license_kind": "unknown", "license_flag": True, "author": "",
                "url": "", "duration_s": 1.0, "sample_rate": SR, "channels": 1, "audio_sha256": sha256_bytes(data),
            })
    return rows


def write_clips(build, rows):
    (build / "read").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS["clips"]).to_parquet(build / "read" / "clips.parquet", index=False)


@pytest.fixture()
def corpus(tmp_path):
    a4 = flac(tone(440.0, 1.0, SR))
    clips = {
        "1": a4,
        "2": a4,  # the same upload under a second id: measured once
        "3": flac(tone(220.0, 1.5, SR)),
        "4": flac(noise("white", 1.0, SR, seed=3)),
        "5": flac(np.zeros(SR, np.float32)),
        "6": a4[: len(a4) // 2],
    }
    rows = write_corpus(tmp_path / "corpus", "shard-000.tar", clips)
    write_clips(tmp_path / "build", rows)
    return tmp_path / "corpus", tmp_path / "build", rows


def test_stage_writes_measurements_rejects_and_manifest(corpus):
    root, build, _ = corpus
    params = stage_params("measure")
    man = measure_stage(build, root, params, workers=2, quiet=True)
    m = pd.read_parquet(build / "measure" / "measurements.parquet")
    r = pd.read_parquet(build / "measure" / "rejects.parquet")
    assert list(m.columns) == COLUMNS["measurements"] and list(r.columns) == COLUMNS["rejects"]
    assert list(m["clip_id"]) == ["freesound/1", "freesound/2", "freesound/3", "freesound/4"]
    by = m.set_index("clip_id")
    assert abs(by.loc["freesound/1", "f0_hz"] - 440.0) < 3 and by.loc["freesound/1", "f0_hz"] == by.loc["freesound/2", "f0_hz"]
    assert abs(by.loc["freesound/3", "f0_hz"] - 220.0) < 2
    assert not by.loc["freesound/4", "pitched"] and math.isnan(by.loc["freesound/4", "f0_hz"])
    assert (m["estimator"] == params["estimator"]).all()
    assert dict(zip(r["key"], r["reason"])) == {"freesound/5": "silent", "freesound/6": "truncated"}
    assert set(r["stage"]) == {"measure"}
    assert man["counts"] == {"kept": 4, "rejected": {"silent": 1, "truncated": 1}}
    assert man["run"]["units"] == {"unique_audio": 5, "computed": 5, "from_cache": 0}
    assert man["estimators"]["f0_hz"] == params["estimator"] and man["per_estimator"] == {params["estimator"]: 4}
    assert json.loads((build / "measure" / "manifest.json").read_text())["counts"]["kept"] == 4
    notes = pd.read_parquet(build / "measure" / "pitch_notes.parquet")
    assert list(notes.columns) == PITCH_NOTE_COLUMNS and list(notes["clip_id"]) == list(m["clip_id"])
    why = dict(zip(notes["clip_id"], notes["unpitched_reason"]))
    assert why["freesound/1"] == why["freesound/3"] == "" and why["freesound/4"] in ("no_voiced", "few_voiced", "unstable")
    assert man["f0_pass"] == {"base": 4} and man["unpitched_reasons"] == {why["freesound/4"]: 1}


def test_rerun_skips_and_resume_computes_only_missing(corpus):
    root, build, rows = corpus
    params = stage_params("measure")
    first = measure_stage(build, root, params, workers=1, quiet=True)
    before = (build / "measure" / "measurements.parquet").read_bytes()
    first.pop("run")  # what this run computed (run.json); the manifest itself is the same bytes on every run
    assert measure_stage(build, root, params, workers=1, quiet=True) == first  # fresh: nothing to do
    # A killed run: the manifest never got written and two results never reached the cache.
    (build / "measure" / "manifest.json").unlink()
    db = sqlite3.connect(build / "measure" / "cache.sqlite")
    with db:
        db.execute("DELETE FROM results WHERE key IN (SELECT key FROM results ORDER BY key LIMIT 2)")
    db.close()
    resumed = measure_stage(build, root, params, workers=1, quiet=True)
    assert resumed["run"]["units"] == {"unique_audio": 5, "computed": 2, "from_cache": 3}
    assert (build / "measure" / "measurements.parquet").read_bytes() == before
    # A new shard: only its clip is measured.
    rows2 = write_corpus(root, "more/shard-001.tar", {"7": flac(tone(330.0, 1.0, SR))})
    write_clips(build, rows + rows2)
    grown = measure_stage(build, root, params, workers=1, quiet=True)
    assert grown["run"]["units"] == {"unique_audio": 6, "computed": 1, "from_cache": 5} and grown["counts"]["kept"] == 5
    # Other params: a different cache key, everything measured again.
    other = measure_stage(build, root, {**params, "max_analysis_s": 2.0}, workers=1, quiet=True)
    assert other["run"]["units"]["computed"] == 6


def test_a_change_to_the_code_that_measures_is_measured_again(corpus, repo_copy):
    """The per-clip cache follows the code: with the measuring code changed (here: every f0 doubled, appended to a
    copy of pipeline/measure/measurement.py), a rerun on the same build computes every clip again and writes the new
    f0, never the cached one."""
    import subprocess
    import sys

    root, build, _ = corpus
    params = stage_params("measure")
    measure_stage(build, root, params, workers=1, quiet=True)
    before = pd.read_parquet(build / "measure" / "measurements.parquet").set_index("clip_id")["f0_hz"]
    copy, env = repo_copy
    with open(copy / "pipeline" / "measure" / "measurement.py", "a", encoding="utf-8") as f:
        f.write("\n\n_measured = measure_audio_bytes\n\n\ndef measure_audio_bytes(data, params):\n"
                "    out = _measured(data, params)\n    out['f0_hz'] = 2 * out['f0_hz']\n    return out\n")
    script = ("import json, sys; from pipeline.stages.measure import measure_stage; from pipeline.params import stage_params; "
              "m = measure_stage(sys.argv[1], sys.argv[2], stage_params('measure'), workers=1, quiet=True); print(json.dumps(m['run']))")
    proc = subprocess.run([sys.executable, "-c", script, str(build), str(root)], cwd=copy, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1])["units"]["computed"] == 5  # nothing served from the old cache
    after = pd.read_parquet(build / "measure" / "measurements.parquet").set_index("clip_id")["f0_hz"]
    pitched = before.dropna()
    assert len(pitched) >= 2
    np.testing.assert_allclose(after[pitched.index], 2 * pitched)
    # and back: the original code's values return, computed again (the store was emptied for the other code)
    again = measure_stage(build, root, params, workers=1, quiet=True)
    assert again["run"]["units"]["computed"] == 5
    np.testing.assert_allclose(pd.read_parquet(build / "measure" / "measurements.parquet").set_index("clip_id")["f0_hz"][pitched.index], pitched)
