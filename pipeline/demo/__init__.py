"""The demo generator: an embedded, seeded corpus in LAION-Audio-630K format (tar shards + meta CSV + ground truth)
made of synthesised sounds. It makes data for `auditorybench corpus`, the tests and the benches; it is not a stage
of building a release."""

from pipeline.demo.corpus import GROUND_TRUTH_COLUMNS, META_COLUMNS, build_bench_shards, build_demo_corpus

__all__ = ["build_demo_corpus", "build_bench_shards", "GROUND_TRUTH_COLUMNS", "META_COLUMNS"]
