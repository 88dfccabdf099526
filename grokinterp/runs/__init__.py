"""Runs: one folder per run (:mod:`~grokinterp.runs.layout`), its identity
(:mod:`~grokinterp.runs.spec`), the writer and checkpoint store (:mod:`~grokinterp.runs.store`),
the reader (:mod:`~grokinterp.runs.run`) and the importers of files saved elsewhere
(:mod:`~grokinterp.runs.importers`)."""

from .importers import convert_legacy_state_dict, load_legacy, read_legacy_file
from .layout import RunPaths, checkpoint_name
from .run import Run, as_run, load_checkpoint, load_run
from .spec import SCHEDULE_FIELDS, check_same_spec, spec_differences, spec_key, spec_of
from .store import (
    RunWriter,
    library_versions,
    load_optimiser_state,
    load_weights,
    optimiser_state,
    read_metrics,
    read_resume_state,
    save_checkpoint,
)

__all__ = [
    "SCHEDULE_FIELDS",
    "Run",
    "RunPaths",
    "RunWriter",
    "as_run",
    "check_same_spec",
    "checkpoint_name",
    "convert_legacy_state_dict",
    "library_versions",
    "load_checkpoint",
    "load_legacy",
    "load_optimiser_state",
    "load_run",
    "load_weights",
    "optimiser_state",
    "read_legacy_file",
    "read_metrics",
    "read_resume_state",
    "save_checkpoint",
    "spec_differences",
    "spec_key",
    "spec_of",
]
