"""Floor 2: train and evaluate on a release — span detector, audio retrieval index, AudioBERT, text-only baselines.

Modules (import what you use; each names its public API in `__all__`):
    loading          load models/tokenizers by hub id or local path, failing loudly (ModelLoadError)
    audio_encoders   aisfx (shipped), CLAP and AST audio embeddings
    retrieval        AudioIndex, build_index, the demo contrastive retrieval model, recall@k
    span_detector    the auditory-knowledge span tagger and span P/R/F1
    audiobert        the model and its settings (ModelSettings, AudioBertConfig, build_model): audio injection +
                     span-gated LoRA; multi-piece answer scoring
    baselines        text-only masked and causal LMs
    config           TrainConfig (published() and demo() recipes), RunOptions, CHECKPOINT_FORMAT
    data             a release's items as dicts, SpanHits (retrieval + re-ranking once), the controls' audio
    align            the alignment warm-up of the audio projection (fitted on train clips only)
    rerank           caption re-ranking of retrieval hits
    placement        check every training item's spans up front; leave out (with a reason) what cannot be placed
    infer            load_checkpoint() -> TrainedModel, which scores items
    train            train() -> a self-describing checkpoint
    eval             evaluate() -> results.json + results.md (95 % intervals, the controls, paired tests)
    report           the README's demo results block, generated from results.json
    sweep            choose on dev: a recipe and its variants scored on the dev split only
    leakage          score_resplit(): text-only / AudioBERT on the official test vs the leak-free resplit test
"""

__all__ = ["loading", "audio_encoders", "retrieval", "span_detector", "audiobert", "baselines", "config", "data", "placement", "infer", "train", "eval", "leakage",
           "align", "rerank", "report", "sweep"]
