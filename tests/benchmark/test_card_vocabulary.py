"""The data card lists an open answer vocabulary (the animal task's answers, whatever the LLM named) with counts."""

from __future__ import annotations

from benchmark.card import _tasks_section


def test_card_lists_the_answer_vocabulary_with_counts():
    manifest = {"tasks": {
        "animal_sound_recognition": {"choices": ["capybara", "dog", "eagle owl"],
                                     "balance": {"train": {"dog": 5, "eagle owl": 2, "capybara": 2}, "test": {"dog": 1}}},
        "sound_pitch_comparison": {"choices": ["higher", "lower"], "balance": {"train": {"higher": 3, "lower": 3}}}}}
    text = _tasks_section(manifest)
    assert "Answer vocabulary (3 answers, items each): dog 6, capybara 2, eagle owl 2." in text
    assert text.count("Answer vocabulary") == 1  # a comparison task's two declared answers are not a vocabulary
