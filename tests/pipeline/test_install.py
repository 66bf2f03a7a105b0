"""The installed stack imports together: peft, transformers and librosa beside the project's CREPE path
(torchcrepe imported without torchaudio), in either order, in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CREPE_FIRST = """
import sys, json, numpy as np
from pipeline.measure.crepe import import_torchcrepe, estimate_pitch_crepe
tc = import_torchcrepe()
stub_left = "torchaudio" in sys.modules
import peft, transformers, librosa
"""
LIBS_FIRST = """
import sys, json, numpy as np
import peft, transformers, librosa
from pipeline.measure.crepe import import_torchcrepe, estimate_pitch_crepe
tc = import_torchcrepe()
stub_left = "torchaudio" in sys.modules
"""
PREDICT = """
from pipeline.params import stage_params
t = np.arange(16000) / 16000
track = estimate_pitch_crepe((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, stage_params("measure"), "tiny")
f0 = float(np.nanmedian(track.f0_hz))
try:
    tc.load.audio("x.wav")
    loader = "no error"
except ImportError as e:
    loader = str(e)
print(json.dumps({"f0": f0, "voiced": float(track.voiced.mean()), "stub_left": stub_left, "loader": loader,
                  "peft": peft.__version__, "transformers": transformers.__version__}))
"""


@pytest.mark.parametrize("order", [CREPE_FIRST, LIBS_FIRST], ids=["crepe-first", "libraries-first"])
def test_stack_imports_and_crepe_predicts_440(order):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", order + PREDICT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(1200 * __import__("math").log2(res["f0"] / 440.0)) < 25.0 and res["voiced"] > 0.9
    assert not res["stub_left"]  # the placeholder is gone before anything else imports
    assert "soundfile" in res["loader"]  # torchcrepe's own file loader says why it cannot work
