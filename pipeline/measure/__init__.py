"""The measure stage: per clip, f0 (pitched or not), brightness, loudness and durations, from the audio itself."""

from pipeline.measure.audio import AudioRejected, load_audio_bytes
from pipeline.measure.measurement import measure_audio, measure_audio_bytes

__all__ = ["AudioRejected", "load_audio_bytes", "measure_audio", "measure_audio_bytes", "measure_stage", "measure_clip_job"]


def __getattr__(name: str):
    # The stage wrapper pulls in pandas and the stage runner; import it only when asked for.
    if name in ("measure_stage", "measure_clip_job"):
        from pipeline.measure import stage

        return getattr(stage, name)
    raise AttributeError(name)
