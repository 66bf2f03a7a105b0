"""The measure stage's pure core: per clip, f0 (pitched or not), brightness, loudness and durations, from the audio
itself. The stage wrapper (files, process pool, result store) is pipeline/stages/measure.py."""

from pipeline.measure.audio import AudioRejected, load_audio_bytes
from pipeline.measure.measurement import measure_audio, measure_audio_bytes

__all__ = ["AudioRejected", "load_audio_bytes", "measure_audio", "measure_audio_bytes"]
