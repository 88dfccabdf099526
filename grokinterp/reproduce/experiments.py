"""The tickets paper's experiments as a registry: what each trains, and what it measures.

An :class:`Experiment` is data: its name (what ``--only`` takes), title and figures, its
``stages`` and its ``measure``. A stage is a function ``stage(ctx) -> {role: RunPlan}``: the runs
of one seed that can train once the earlier stages have finished (stage 0: runs from scratch, such
as the dense base run; stage 1: runs derived from their checkpoints, such as tickets). ``ctx`` is a
:class:`Context`: the preset, the seed, and ``ctx.run(role)``, a finished run of an earlier stage
(``ctx.run(role, seed=s)`` reads another seed's, as Table 1's faithful protocol does). ``measure(ctx)``
reads the finished runs of one seed and returns flat numbers (``{"t_gen/ticket": 420, ...}``; ``None``
where a run never reached a threshold); :mod:`grokinterp.reproduce.claims` judges them over seeds.

Plans carry no run folder: the runner puts every run in a folder named by its spec key, so a run
two experiments share (the base run feeds most of them) trains once. Adding an experiment (another
task, another figure) is one :class:`Experiment` entry in :data:`EXPERIMENTS` and its claims in
:data:`grokinterp.reproduce.claims.CLAIMS`.

Seeds: seed ``s`` is the split seed of the task and the init seed of the model (and the seed of
the random pruner and of the edge-popup scores).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from ..errors import GrokinterpError
from ..fourier import fourier_entropy
from ..metrics import grokking_times
from ..models import MLPConfig, config_to_dict, make_transformer, model_config
from ..runs import Run
from ..sweeps import RunPlan
from ..tasks import ModularArithmetic, task_from_dict
from ..tickets import (
    edge_popup_plan,
    largest_generalising,
    mask_trajectory,
    norm_matched_plan,
    pruned_at_init_plan,
    ticket_plan,
)
from ..training import TrainConfig
from .claims import PAPER_BEST_PRUNE_RATIO, PAPER_CRITICAL_RATIO, PAPER_JACCARD_PEAK, PAPER_TABLE1
from .presets import PaIVariant, TicketsPaperPreset

__all__ = ["EXPERIMENTS", "Context", "Experiment", "MissingRun", "claim_context", "select", "ticket_experiment"]


class MissingRun(GrokinterpError):
    """A run an experiment needs did not finish (it failed, or its stage was not reached)."""


@dataclass
class Context:
    """What a stage or a measure of one experiment and seed can see (see the module docstring)."""

    preset: TicketsPaperPreset
    experiment: str
    seed: int
    seeds: tuple[int, ...]
    lookup: Callable[[str, str, int], Run]

    def run(self, role: str, seed: Optional[int] = None) -> Run:
        """The finished run of ``role`` (this experiment, this seed unless ``seed``)."""
        return self.lookup(self.experiment, role, self.seed if seed is None else seed)


Stage = Callable[[Context], Mapping[str, RunPlan]]
Measure = Callable[[Context], dict]


@dataclass(frozen=True)
class Experiment:
    """One figure or table of the paper (see the module docstring). ``paper(preset)`` gives the
    paper's number for a measured quantity, where the paper states one."""

    name: str
    title: str
    figures: str
    stages: tuple[Stage, ...]
    measure: Measure
    paper: Callable[[TicketsPaperPreset], Mapping[str, Any]] = field(default=lambda preset: {})


# ------------------------------------------------------------------------------------- building
def mlp_task(pr: TicketsPaperPreset, seed: int, op: str = "add", frac_train: Optional[float] = None) -> ModularArithmetic:
    return ModularArithmetic(pr.p, op, pr.pairs, pr.frac_train if frac_train is None else frac_train, seed=seed)


def mlp_plan(pr: TicketsPaperPreset, seed: int, train: TrainConfig, op: str = "add",
             frac_train: Optional[float] = None, init_scales: Optional[tuple[tuple[str, float], ...]] = None) -> RunPlan:
    """A dense MLP run from its seeded init (``init_scales`` as :class:`MLPConfig` takes them)."""
    model = config_to_dict(MLPConfig(pr.p, d_embed=pr.d_embed, d_hidden=pr.d_hidden, seed=seed, init_scales=init_scales))
    return RunPlan.of(mlp_task(pr, seed, op, frac_train), model, train)


def vector_plan(pr: TicketsPaperPreset, name: str, seed: int) -> RunPlan:
    """The base run of the preset's task on vectors ``name``, its data and init seeded by ``seed``."""
    vt = pr.vector_tasks[name]
    return RunPlan.of(task_from_dict({**vt.task, "seed": seed}), {**vt.model, "seed": seed}, vt.base)


def _vector_experiment(name: str) -> Experiment:
    """A base run and its ticket on one of the preset's tasks on vectors (titles from the full preset)."""
    from_full = {"regression": ("Polynomial regression (MSE): ticket vs dense base run", "Figs. 2d, 13"),
                 "images": ("Images with MSE on one-hot labels: ticket vs dense base run", "Figs. 2e, 14"),
                 "parity": ("Sparse parity: ticket vs dense base run", "not in the paper")}[name]
    return ticket_experiment(name, *from_full, lambda pr, seed: vector_plan(pr, name, seed),
                             retrain=lambda pr: pr.vector_tasks[name].retrain)


def base_stage(ctx: Context) -> dict:
    return {"base": mlp_plan(ctx.preset, ctx.seed, ctx.preset.base)}


def _ticket(ctx: Context, base: Run, prune_ratio: float, ticket_epoch=None, train: TrainConfig | None = None):
    pr = ctx.preset
    t = pr.ticket_epoch if ticket_epoch is None else ticket_epoch
    return ticket_plan(base, t, prune_ratio, train_config=train or pr.retrain, reuse=True)


def _pai_plan(base: Run, v: PaIVariant, prune_ratio: float, seed: int, train: TrainConfig) -> RunPlan:
    kwargs = {"seed": seed} if v.method == "random" else dict(v.kwargs)
    return pruned_at_init_plan(base, v.method, prune_ratio, pruner_kwargs=kwargs, score_at=v.score_at,
                               train_config=train, reuse=True).plan


def _times(run: Run) -> dict:
    t = grokking_times(run.history)
    return {"t_mem": t.t_mem, "t_gen": t.t_gen, "tau": t.tau_grok}


def _best_test_acc(run: Run) -> float:
    return max(float(r["test_acc"]) for r in run.history)


def _acc_at(run: Run, epoch: int) -> Optional[float]:
    """Test accuracy of the last evaluation at or before ``epoch``."""
    rows = [r for r in run.history if r["epoch"] <= epoch]
    return float(rows[-1]["test_acc"]) if rows else None


# ------------------------------------------------------------------------------------- fig 1-2a
def _fig1_tickets(ctx: Context) -> dict:
    return {"ticket": _ticket(ctx, ctx.run("base"), ctx.preset.prune_ratio).plan}


def _fig1_measure(ctx: Context) -> dict:
    out = {}
    for role in ("base", "ticket"):
        run = ctx.run(role)
        out.update({f"{k}/{role}": v for k, v in _times(run).items()})
        out[f"test_acc/{role}"] = _best_test_acc(run)
    return out


def ticket_experiment(
    name: str,
    title: str,
    figures: str,
    base_plan: Callable[[TicketsPaperPreset, int], RunPlan],
    *,
    retrain: Callable[[TicketsPaperPreset], TrainConfig] = lambda pr: pr.retrain,
    prune_ratio: Callable[[TicketsPaperPreset], float] = lambda pr: pr.prune_ratio,
    ticket_epoch: Callable[[TicketsPaperPreset], Optional[int]] = lambda pr: pr.ticket_epoch,
) -> Experiment:
    """A base run and its grokking ticket, measured as Fig. 1 is (t_mem, t_gen, tau_grok and best
    test accuracy of ``base`` and ``ticket``): stage 0 trains ``base_plan(preset, seed)``, stage 1
    the ticket of its checkpoint at ``ticket_epoch(preset)`` (``None``: the last) removing
    ``prune_ratio(preset)``, retrained with ``retrain(preset)``. Any task and model the run plans
    accept fit; pair it with :func:`grokinterp.reproduce.claims.ticket_earlier_claim`."""

    def base(ctx: Context) -> dict:
        return {"base": base_plan(ctx.preset, ctx.seed)}

    def ticket(ctx: Context) -> dict:
        pr = ctx.preset
        return {"ticket": ticket_plan(ctx.run("base"), ticket_epoch(pr), prune_ratio(pr), train_config=retrain(pr),
                                      reuse=True).plan}

    return Experiment(name, title, figures, (base, ticket), _fig1_measure)


# ------------------------------------------------------------------------------------- fig 2b
def _tf_base(ctx: Context) -> dict:
    pr, tp = ctx.preset, ctx.preset.transformer
    task = ModularArithmetic(pr.p, "add", tp.pairs, tp.frac_train, seed=ctx.seed)
    model = config_to_dict(model_config(make_transformer(tp.preset, p=pr.p, seed=ctx.seed)))
    return {"base": RunPlan.of(task, model, tp.base)}


def _tf_derived(ctx: Context) -> dict:
    pr, tp = ctx.preset, ctx.preset.transformer
    base = ctx.run("base")
    ticket = _ticket(ctx, base, pr.prune_ratio, train=tp.retrain)
    plans = {"ticket": ticket.plan}
    for norm in pr.norms:
        plans[f"dense_{norm}"] = norm_matched_plan(base, ticket.mask, norm, train_config=tp.retrain, reuse=True).plan
    for v in tp.pai:
        plans[v.name] = _pai_plan(base, v, pr.prune_ratio, ctx.seed, tp.retrain)
    return plans


def _tf_measure(ctx: Context) -> dict:
    roles = ["base", "ticket", *(f"dense_{n}" for n in ctx.preset.norms), *(v.name for v in ctx.preset.transformer.pai)]
    return {f"t_gen/{r}": _times(ctx.run(r))["t_gen"] for r in roles} | {
        f"test_acc/{r}": _best_test_acc(ctx.run(r)) for r in roles}


# ------------------------------------------------------------------------------------- fig 2c
def _ops_base(ctx: Context) -> dict:
    return {f"base/{op}": mlp_plan(ctx.preset, ctx.seed, ctx.preset.base, op) for op in ctx.preset.ops}


def _ops_tickets(ctx: Context) -> dict:
    return {f"ticket/{op}": _ticket(ctx, ctx.run(f"base/{op}"), ctx.preset.prune_ratio).plan for op in ctx.preset.ops}


def _ops_measure(ctx: Context) -> dict:
    out = {}
    for op in ctx.preset.ops:
        for role in ("base", "ticket"):
            run = ctx.run(f"{role}/{op}")
            out[f"t_gen/{role}/{op}"] = _times(run)["t_gen"]
            out[f"test_acc/{role}/{op}"] = _best_test_acc(run)
    return out


# ------------------------------------------------------------------------------------- fig 3-4
def _prune_sweep(ctx: Context) -> dict:
    base = ctx.run("base")
    return {f"k{k:g}": _ticket(ctx, base, k).plan for k in ctx.preset.prune_ratios}


def _prune_measure(ctx: Context) -> dict:
    out, taus = {}, {}
    for k in ctx.preset.prune_ratios:
        t = _times(ctx.run(f"k{k:g}"))
        out[f"t_gen/k{k:g}"], out[f"tau/k{k:g}"] = t["t_gen"], t["tau"]
        if t["tau"] is not None:
            taus[k] = t["tau"]
    out["best_k"] = min(taus, key=lambda k: (taus[k], k)) if taus else None
    return out


def _epoch_sweep(ctx: Context) -> dict:
    base = ctx.run("base")
    return {f"t{t}": _ticket(ctx, base, ctx.preset.prune_ratio, ticket_epoch=t).plan for t in ctx.preset.ticket_epochs}


def _epoch_measure(ctx: Context) -> dict:
    out = {}
    for t in ctx.preset.ticket_epochs:
        run = ctx.run(f"t{t}")
        out[f"t_gen/t{t}"], out[f"test_acc/t{t}"] = _times(run)["t_gen"], _best_test_acc(run)
    return out


# ------------------------------------------------------------------------------------- fig 5-6
def _norm_matched(ctx: Context) -> dict:
    pr, base = ctx.preset, ctx.run("base")
    ticket = _ticket(ctx, base, pr.prune_ratio)
    plans = {"ticket": ticket.plan}
    for norm in pr.norms:
        plans[f"dense_{norm}"] = norm_matched_plan(base, ticket.mask, norm, train_config=pr.retrain, reuse=True).plan
    return plans


def _pai(ctx: Context) -> dict:
    pr, base = ctx.preset, ctx.run("base")
    plans = {"ticket": _ticket(ctx, base, pr.prune_ratio).plan}
    for v in pr.pai:
        plans[v.name] = _pai_plan(base, v, pr.prune_ratio, ctx.seed, pr.retrain)
    return plans


def _roles_measure(roles: Callable[[TicketsPaperPreset], list[str]]) -> Measure:
    def measure(ctx: Context) -> dict:
        out = {}
        for r in roles(ctx.preset):
            run = ctx.run(r)
            out[f"t_gen/{r}"], out[f"test_acc/{r}"] = _times(run)["t_gen"], _best_test_acc(run)
        return out

    return measure


# ------------------------------------------------------------------------------------- critical
def _critical(ctx: Context) -> dict:
    base = ctx.run("base")
    return {f"k{k:g}": _ticket(ctx, base, k, train=ctx.preset.critical).plan for k in ctx.preset.critical_ratios}


def _critical_measure(ctx: Context) -> dict:
    pr = ctx.preset
    runs = {k: ctx.run(f"k{k:g}") for k in pr.critical_ratios}
    out = {f"test_acc/k{k:g}": _best_test_acc(r) for k, r in runs.items()}
    out["critical_ratio"] = largest_generalising([(k, r.history) for k, r in runs.items()], pr.critical_threshold)
    return out


# ------------------------------------------------------------------------------------- fig 7-8
def _jaccard_measure(ctx: Context) -> dict:
    """The Jaccard distance between the base run's magnitude masks ``jaccard_every`` epochs apart
    (row ``e``: the masks at ``e - every`` and ``e``), its peak over all rows (``peak_epoch``) and
    after the first row (``peak_epoch_later``: the first interval is the one in which every weight
    leaves its random init), and the base's ``t_gen``, the end of its climb in test accuracy."""
    base = ctx.run("base")
    every = ctx.preset.jaccard_every
    t_gen = _times(base)["t_gen"]
    if len([e for e in base.checkpoint_epochs if e % every == 0]) < 3:
        return {"peak_epoch": None, "peak_jaccard": None, "peak_epoch_later": None, "t_gen/base": t_gen}
    table = mask_trajectory(base, ctx.preset.prune_ratio, every=every)
    peak = table.loc[table["jaccard"].idxmax()]
    later = table.iloc[1:]
    return {"peak_epoch": int(peak["epoch"]), "peak_jaccard": float(peak["jaccard"]),
            "peak_epoch_later": int(later.loc[later["jaccard"].idxmax(), "epoch"]), "t_gen/base": t_gen,
            "jaccard": [[int(e), float(j)] for e, j in zip(table["epoch"], table["jaccard"])]}


def _entropy_measure(ctx: Context) -> dict:
    out = {}
    for role in ("base", "ticket"):
        run = ctx.run(role)
        first, last = run.checkpoint_epochs[0], run.checkpoint_epochs[-1]
        out[f"entropy0/{role}"] = float(fourier_entropy(run.model_weights(first), "in"))
        out[f"entropy_end/{role}"] = float(fourier_entropy(run.model_weights(last), "in"))
        out[f"entropy/{role}"] = [[e, float(fourier_entropy(run.model_weights(e), "in"))] for e in run.checkpoint_epochs]
    return out


# ------------------------------------------------------------------------------------- table 1
PROTOCOLS = ("faithful", "corrected")
TABLE1_ROWS = ("wd", "ep_frozen", "ep_wd")


def _memorised(ctx: Context) -> dict:
    t1 = ctx.preset.table1
    return {"memorised": mlp_plan(ctx.preset, ctx.seed, t1.memorise, frac_train=t1.frac_train,
                                  init_scales=t1.init_scales)}


def _table1(ctx: Context) -> dict:
    """Faithful: the first seed's memorised checkpoint, the split rebuilt from this seed (the
    official scripts' way); corrected: this seed's own memorised run on its own split."""
    pr, t1 = ctx.preset, ctx.preset.table1
    plans = {}
    for protocol in PROTOCOLS:
        source = ctx.run("memorised", seed=ctx.seeds[0] if protocol == "faithful" else ctx.seed)
        task = mlp_task(pr, ctx.seed, frac_train=t1.frac_train)
        e = t1.memorised_epoch
        start = source.model_at(e)
        plans[f"{protocol}/wd"] = RunPlan.of(
            task, start, t1.wd, parent={"run": str(source.path), "epoch": e, "kind": "continued"},
            parent_key=source.key, init_source={"run": str(source.path), "epoch": e})
        for row, cfg in (("ep_frozen", t1.ep_frozen), ("ep_wd", t1.ep_wd)):
            plans[f"{protocol}/{row}"] = edge_popup_plan(source, t1.prune_ratio, epoch=e, task=task,
                                                         config=dataclasses.replace(cfg, seed=ctx.seed))
    return plans


def _table1_measure(ctx: Context) -> dict:
    out = {}
    for protocol in PROTOCOLS:
        for row in TABLE1_ROWS:
            run = ctx.run(f"{protocol}/{row}")
            for e in ctx.preset.table1.read_epochs:
                out[f"{protocol}/{row}/acc@{e}"] = _acc_at(run, e)
    return out


def _table1_paper(pr: TicketsPaperPreset) -> dict:
    return {f"{protocol}/{row}/acc@{e}": v for protocol in PROTOCOLS for row in TABLE1_ROWS
            for e, v in zip(pr.table1.read_epochs, PAPER_TABLE1[row])}


# ------------------------------------------------------------------------------------- registry
def _pai_roles(pr: TicketsPaperPreset) -> list[str]:
    return ["ticket", *(v.name for v in pr.pai)]


def _norm_roles(pr: TicketsPaperPreset) -> list[str]:
    return ["ticket", *(f"dense_{n}" for n in pr.norms)]


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    ticket_experiment("fig1", "Grokking tickets: ticket vs dense base run (MLP, addition)", "Figs. 1, 2a",
                      lambda pr, seed: mlp_plan(pr, seed, pr.base)),
    Experiment("fig2b", "Transformer tickets with norm-matched and pruning-at-init controls", "Figs. 2b, 11",
               (_tf_base, _tf_derived), _tf_measure),
    Experiment("fig2c", "Other modular operations: base vs ticket", "Fig. 2c", (_ops_base, _ops_tickets), _ops_measure),
    Experiment("fig3", "Prune-ratio sweep of tickets", "Fig. 3", (base_stage, _prune_sweep), _prune_measure,
               lambda pr: {"best_k": PAPER_BEST_PRUNE_RATIO}),
    Experiment("fig4", "Ticket-epoch sweep", "Fig. 4", (base_stage, _epoch_sweep), _epoch_measure),
    Experiment("fig5", "Norm-matched dense controls (L1, L2)", "Fig. 5", (base_stage, _norm_matched),
               _roles_measure(_norm_roles)),
    Experiment("fig6", "Pruning-at-initialisation baselines", "Figs. 6, 12", (base_stage, _pai), _roles_measure(_pai_roles)),
    Experiment("critical", "Critical prune ratio without weight decay", "Sec. 5", (base_stage, _critical),
               _critical_measure, lambda pr: {"critical_ratio": PAPER_CRITICAL_RATIO}),
    Experiment("fig7", "Jaccard distance of masks over training", "Fig. 7", (base_stage,), _jaccard_measure,
               lambda pr: {"peak_epoch": f"{PAPER_JACCARD_PEAK[0]}-{PAPER_JACCARD_PEAK[1]}"}),
    Experiment("fig8", "Fourier entropy of base and ticket over training", "Fig. 8, App. F",
               (base_stage, _fig1_tickets), _entropy_measure),
    Experiment("table1", "Edge-popup from a memorised solution", "Table 1", (_memorised, _table1), _table1_measure,
               _table1_paper),
    _vector_experiment("regression"),
    _vector_experiment("images"),
    _vector_experiment("parity"),
)}


def select(only=None) -> list[Experiment]:
    """The experiments named in ``only`` (names, or a comma-separated string), in registry order;
    ``None``: all. An unknown name is an error listing the known ones."""
    if only is None:
        return list(EXPERIMENTS.values())
    names = [n.strip() for n in only.split(",")] if isinstance(only, str) else [str(n).strip() for n in only]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not names or any(not n for n in names):
        raise GrokinterpError(f"unknown experiment(s) {unknown or names}; expected names among {', '.join(EXPERIMENTS)}")
    return [e for e in EXPERIMENTS.values() if e.name in names]


def claim_context(pr: TicketsPaperPreset) -> dict:
    """The preset's numbers the claims' rules read."""
    return {
        "prune_ratios": list(pr.prune_ratios), "ticket_epochs": list(pr.ticket_epochs),
        "full_ticket_epoch": pr.full_ticket_epoch, "pai": [v.name for v in pr.pai],
        "critical_ratios": list(pr.critical_ratios), "critical_threshold": pr.critical_threshold,
        "read_epochs": list(pr.table1.read_epochs), "jaccard_every": pr.jaccard_every,
    }
