"""The project's exceptions. A message names the file or item and the reason, in one line."""

__all__ = [
    "AuditoryBenchError",
    "InputError",
    "ConfigError",
    "StageError",
    "RejectBudgetError",
    "IncompleteStageError",
    "ReleaseIntegrityError",
    "ValidationError",
    "ModelLoadError",
    "UnknownNameError",
]


class AuditoryBenchError(Exception):
    """Base class: every error this project raises on purpose."""


class InputError(AuditoryBenchError):
    """Bad input that stops a stage: an unreadable shard, a missing file, a malformed CSV."""


class ConfigError(AuditoryBenchError):
    """A params.yaml entry, flag or environment variable that is missing or malformed."""


class StageError(AuditoryBenchError):
    """A stage could not finish (its partial work is kept for the rerun)."""


class RejectBudgetError(StageError):
    """More items were rejected than the stage's max_reject_frac allows."""


class IncompleteStageError(StageError):
    """A service the stage asks (the LLM endpoint) failed: units are left pending, not rejected, and no manifest is
    written, so the next run asks exactly those."""


class ReleaseIntegrityError(AuditoryBenchError):
    """A release whose files do not match its manifest, or a name-version rebuilt with other content."""


class ValidationError(AuditoryBenchError):
    """A release that breaks a benchmark rule (overlap, duplicate, imbalance, schema)."""


class ModelLoadError(AuditoryBenchError):
    """A model or tokenizer that cannot be loaded, or loaded as something useless."""


class UnknownNameError(AuditoryBenchError, KeyError):
    """An unknown registry name (task, metric, backend); the message suggests the closest names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line
        return str(self.args[0]) if self.args else ""
