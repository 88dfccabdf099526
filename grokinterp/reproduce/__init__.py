"""Reproducing the tickets paper (Minegishi et al., "Grokking Tickets"): its settings as presets
(:mod:`~grokinterp.reproduce.presets`), its experiments as a registry of staged run plans and
measures (:mod:`~grokinterp.reproduce.experiments`), its claims with their numbers and verdict
rules (:mod:`~grokinterp.reproduce.claims`), the run of them all as one resumable sweep per stage
(:mod:`~grokinterp.reproduce.runner`), and the report (:mod:`~grokinterp.reproduce.report`, figures
in :mod:`~grokinterp.reproduce.plots`)."""

from .presets import (
    PAPER_SETTINGS,
    PRESETS,
    PaIVariant,
    PaperSetting,
    Table1Preset,
    TicketsPaperPreset,
    TransformerPreset,
    preset,
)
from .claims import (
    CLAIMS,
    PAPER_TABLE1,
    TABLE1_TOLERANCE,
    Claim,
    Summary,
    Verdict,
    earlier_judge,
    format_summary,
    summarise,
    ticket_earlier_claim,
)
from .experiments import EXPERIMENTS, Context, Experiment, MissingRun, claim_context, select, ticket_experiment
from .report import build_report, render_markdown, write_report
from .runner import Reproduction, reproduce_tickets_paper

__all__ = [
    "CLAIMS",
    "EXPERIMENTS",
    "PAPER_SETTINGS",
    "PAPER_TABLE1",
    "PRESETS",
    "TABLE1_TOLERANCE",
    "Claim",
    "Context",
    "Experiment",
    "MissingRun",
    "PaIVariant",
    "PaperSetting",
    "Reproduction",
    "Summary",
    "Table1Preset",
    "TicketsPaperPreset",
    "TransformerPreset",
    "Verdict",
    "build_report",
    "claim_context",
    "earlier_judge",
    "format_summary",
    "preset",
    "render_markdown",
    "reproduce_tickets_paper",
    "select",
    "summarise",
    "ticket_earlier_claim",
    "ticket_experiment",
    "write_report",
]
