"""Floor 2: train and evaluate on a release — span detector, audio retrieval index, AudioBERT, text-only baselines.

Modules (import what you use; each names its public API in `__all__`):
    loading          load models/tokenizers by hub id or local path, failing loudly (ModelLoadError)
    audio_encoders   aisfx (shipped), CLAP and AST audio embeddings
    retrieval        AudioIndex, build_index, the demo contrastive retrieval model, recall@k
    span_detector    the auditory-knowledge span tagger and span P/R/F1
    audiobert        the model: audio injection + span-gated LoRA; multi-piece answer scoring
    baselines        text-only masked and causal LMs
    config           TrainConfig (the published settings by default), CHECKPOINT_FORMAT
    data             a release's items as dicts, the audio retrieved for their spans
    placement        check every training item's spans up front; leave out (with a reason) what cannot be placed
    infer            load_checkpoint() -> TrainedModel, which scores items
    train            train() -> a self-describing checkpoint
    eval             evaluate() -> results.json + results.md (95 % intervals, paired tests against the text twin)
    leakage          score_resplit(): text-only / AudioBERT on the official test vs the leak-free resplit test
"""

__all__ = ["loading", "audio_encoders", "retrieval", "span_detector", "audiobert", "baselines", "config", "data", "placement", "infer", "train", "eval", "leakage"]
