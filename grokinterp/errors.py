"""Exception types. Every grokinterp error about its input is a ``ValueError`` so callers can catch
either; :class:`TrainingCancelled` is not about input."""

from __future__ import annotations


class GrokinterpError(ValueError):
    """Invalid input to a grokinterp function: the message says what was wrong and what was expected."""


class CheckpointError(GrokinterpError):
    """A checkpoint, run directory or legacy file that cannot be read (missing, corrupt, truncated,
    wrong shapes). The message names the path."""


class MaskError(GrokinterpError):
    """A mask whose names or shapes do not match the model's parameters."""


class StorageError(GrokinterpError):
    """A file or folder that cannot be written or read by the operating system (disk full, read-only,
    a file where a folder is expected, no permission). The message names the path and the cause."""


class RunLockedError(GrokinterpError):
    """A run folder that another writer holds. The message names the holder (process id, host, since
    when)."""


class TrainingCancelled(RuntimeError):
    """Training stopped on request (a sweep interrupted while the run trained in one of its worker
    threads). The run keeps its last checkpoint and resumes from it."""
