"""Command line: ``grokinterp train ...`` (and the other subcommands)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import GrokinterpError
from .models import HookedMLP, MLPConfig, make_transformer
from .report import analyze
from .report.figures import report_html
from .tasks import ModularArithmetic
from .tickets import (
    critical_prune_ratio,
    edge_popup,
    grokking_ticket,
    ticket_controls,
    ticket_epoch_sweep,
    ticket_prune_sweep,
)
from .training import TrainConfig, train


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on modular arithmetic into a run directory")
    p.add_argument("--model", choices=["mlp", "transformer"], default="mlp")
    p.add_argument("--preset", default=None, help="transformer preset: nanda | tickets (default: nanda)")
    p.add_argument("--p", type=int, default=None, help="modulus (default: 67 for the MLP, the preset's p)")
    p.add_argument("--op", default="add")
    p.add_argument("--pairs", default=None, choices=["all", "a>b", "a>=b"],
                   help="pair set (default: a>=b for the MLP, all for the transformer)")
    p.add_argument("--frac-train", type=float, default=None, help="default: 0.4 (MLP), 0.3 (transformer)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="init seed")
    p.add_argument("--d-embed", type=int, default=500, help="MLP embedding width")
    p.add_argument("--d-hidden", type=int, default=48, help="MLP neurons")
    p.add_argument("--act", default=None, help="activation (relu | gelu | quadratic for the MLP)")
    p.add_argument("--epochs", type=int, default=None, help="default: 10000 (MLP), 25000 (transformer)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1.0)
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up epochs")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--stop-at-test-acc", type=float, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true", help="continue the killed run in --out")
    p.add_argument("--no-progress", action="store_true")


def cmd_train(args: argparse.Namespace) -> int:

    if args.model == "mlp":
        p = args.p or 67
        model = HookedMLP(MLPConfig(p, d_embed=args.d_embed, d_hidden=args.d_hidden, act=args.act or "relu", seed=args.seed))
        pairs, frac, epochs = args.pairs or "a>=b", args.frac_train or 0.4, args.epochs or 10_000
    else:
        overrides = {"seed": args.seed}
        if args.p:
            overrides["p"] = args.p
        if args.act:
            overrides["act"] = args.act
        model = make_transformer(args.preset or "nanda", **overrides)
        p = model.grokinterp_config.p
        pairs, frac, epochs = args.pairs or "all", args.frac_train or 0.3, args.epochs or 25_000
    task = ModularArithmetic(p, args.op, pairs, frac, seed=args.split_seed)
    cfg = TrainConfig(
        epochs=epochs, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup,
        eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
        stop_at_test_acc=args.stop_at_test_acc, threads=args.threads, progress=not args.no_progress,
    )
    result = train(model, task, cfg, out_dir=args.out, resume=args.resume)
    t = result.times
    last = result.history[-1]
    print(f"run written to {Path(args.out).resolve()}")
    print(f"epochs {last['epoch']}: train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}")
    print(f"t_mem = {t.t_mem}, t_gen = {t.t_gen}, tau_grok = {_fmt(t.tau_grok)}")
    return 0


def _demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job: base run, grokking ticket, comparison report")
    p.add_argument("--quick", action="store_true", help="small settings (p=23) that finish in well under a minute")
    p.add_argument("--out", default="runs/demo", help="folder for the runs and the report (replaced)")
    p.add_argument("--prune-ratio", type=float, default=0.6, help="fraction of weights the ticket removes")


def demo_settings(quick: bool):
    """(task, model config, train config) of the demo: the tickets paper's MLP on addition mod 67
    (a >= b pairs, 40 % train), or a p=23 version for ``--quick``."""

    if quick:
        return (ModularArithmetic(23, "add", "all", 0.5), MLPConfig(23, d_embed=500, d_hidden=48),
                TrainConfig(epochs=3000, lr=3e-3, eval_every=20, checkpoint_every=100, stop_at_test_acc=0.99,
                            threads=1))
    return (ModularArithmetic(67, "add", "a>=b", 0.4), MLPConfig(67),
            TrainConfig(epochs=30_000, eval_every=20, checkpoint_every=500, stop_at_test_acc=0.99))


def cmd_demo(args: argparse.Namespace) -> int:

    start = time.perf_counter()
    task, model_cfg, cfg = demo_settings(args.quick)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    print(f"1/4 training the tickets MLP on {task.op} mod {task.p} ({len(task.train_inputs)} train pairs) to grokking ...")
    base = train(HookedMLP(model_cfg), task, cfg, out_dir=out / "base")
    t = base.history[-1]["epoch"]
    print(f"    base: t_mem = {base.times.t_mem}, t_gen = {base.times.t_gen}, tau_grok = {_fmt(base.times.tau_grok)}")
    print(f"2/4 grokking ticket: magnitude mask at epoch {t} removing {args.prune_ratio:.0%} of the weights, "
          "rewound to the initial weights, retrained ...")
    ticket = grokking_ticket(out / "base", t, args.prune_ratio, out / "ticket")
    print(f"    ticket: t_mem = {ticket.times.t_mem}, t_gen = {ticket.times.t_gen}, tau_grok = {_fmt(ticket.times.tau_grok)}")
    print("3/4 analysing both runs ...")
    reports = [analyze(out / "base"), analyze(out / "ticket")]
    for name, report in zip(("base", "ticket"), reports):
        report.to_json(out / f"{name}_report.json")
    path = report_html(reports, out / "report.html", "grokinterp demo: base run and its grokking ticket", ["base", "ticket"])
    print("4/4 comparison")
    for name, r in zip(("base", "ticket"), reports):
        tt = r.times or {}
        print(f"    {name:<7} t_mem = {tt.get('t_mem')}, t_gen = {tt.get('t_gen')}, tau_grok = {_fmt(tt.get('tau_grok'))}, "
              f"key frequencies {r.key_frequencies['logit']}, test acc {r.metrics['test_acc']:.4f}")
    tb, tk = base.times.t_gen, ticket.times.t_gen
    if tb is not None and tk is not None:
        print(f"    the ticket generalised {'earlier' if tk < tb else 'later'} than the base run ({tk} vs {tb} epochs)")
    print(f"report: {path.resolve()}  ({time.perf_counter() - start:.0f} s)")
    return 0


def _analyze_parser(sub) -> None:
    p = sub.add_parser("analyze", help="analyse a run directory or checkpoint file")
    p.add_argument("path", help="run directory, .safetensors checkpoint or legacy .pth")
    p.add_argument("--html", default=None, help="write the interactive report here")
    p.add_argument("--json", default=None, help="write the report data here")
    p.add_argument("--no-progress", action="store_true", help="skip the progress measures over checkpoints")
    p.add_argument("--every", type=int, default=None, help="progress measures every this many epochs")


def cmd_analyze(args: argparse.Namespace) -> int:

    report = analyze(args.path, progress=not args.no_progress, progress_every=args.every)
    print(report.summary())
    if args.json:
        report.to_json(args.json)
        print(f"json: {Path(args.json).resolve()}")
    if args.html:
        report.to_html(args.html)
        print(f"html: {Path(args.html).resolve()}")
    return 0


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GrokinterpError(f"expected comma-separated numbers, got {text!r}") from None


def _ticket_parsers(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run", required=True, help="base run directory")
    common.add_argument("--out", required=True, help="output directory")
    common.add_argument("--epochs", type=int, default=None, help="retraining epochs (default: the base run's)")
    common.add_argument("--stop-at-test-acc", type=float, default=None)
    common.add_argument("--weight-decay", type=float, default=None)
    common.add_argument("--scope", choices=["global", "layer"], default="global")

    p = sub.add_parser("ticket", parents=[common], help="take one grokking ticket and retrain it")
    p.add_argument("--epoch", type=int, default=None, help="ticket epoch t (default: the last checkpoint)")
    p.add_argument("--prune-ratio", type=float, default=0.6, help="fraction of weights removed")

    p = sub.add_parser("sweep", parents=[common], help="grokking tickets over prune ratios or ticket epochs")
    p.add_argument("over", choices=["prune-ratio", "epoch"])
    p.add_argument("--values", required=True, help="comma-separated prune ratios or ticket epochs")
    p.add_argument("--epoch", type=int, default=None, help="ticket epoch for a prune-ratio sweep")
    p.add_argument("--prune-ratio", type=float, default=0.6, help="prune ratio for an epoch sweep")

    p = sub.add_parser("controls", parents=[common], help="norm-matched dense and pruning-at-init baselines")
    p.add_argument("--epoch", type=int, default=None)
    p.add_argument("--prune-ratio", type=float, default=0.6)

    p = sub.add_parser("critical", parents=[common], help="critical prune ratio (bracketing search)")
    p.add_argument("--epoch", type=int, default=None)
    p.add_argument("--step", type=float, default=0.01)
    p.add_argument("--start", type=float, default=0.6)

    p = sub.add_parser("edge-popup", help="edge-popup from a checkpoint of a run")
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epoch", type=int, default=None, help="starting checkpoint (default: the last)")
    p.add_argument("--prune-ratio", type=float, default=0.6)
    p.add_argument("--weights", choices=["frozen", "joint"], default="frozen")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue the killed edge-popup run in --out")


def _overrides(args) -> dict:
    out = {}
    for name in ("epochs", "stop_at_test_acc", "weight_decay"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    return out


def _print_table(table) -> None:
    cols = [c for c in ("kind", "method", "prune_ratio", "ticket_epoch", "density", "t_mem", "t_gen", "tau_grok",
                        "final_test_acc") if c in table.columns]
    print(table[cols].to_string(index=False))


def cmd_ticket(args) -> int:

    t = grokking_ticket(args.run, args.epoch, args.prune_ratio, args.out, scope=args.scope, reuse=True, **_overrides(args))
    print(f"ticket run written to {Path(args.out).resolve()}")
    _print_table(__import__("pandas").DataFrame([t.row()]))
    return 0


def cmd_sweep(args) -> int:

    if args.over == "prune-ratio":
        table = ticket_prune_sweep(args.run, _floats(args.values), args.epoch, args.out, scope=args.scope, **_overrides(args))
    else:
        epochs = [int(v) for v in _floats(args.values)]
        table = ticket_epoch_sweep(args.run, epochs, args.prune_ratio, args.out, scope=args.scope, **_overrides(args))
    _print_table(table)
    print(f"table and runs written to {Path(args.out).resolve()}")
    return 0


def cmd_controls(args) -> int:

    table = ticket_controls(args.run, args.epoch, args.prune_ratio, args.out, scope=args.scope, **_overrides(args))
    _print_table(table)
    print(f"table and runs written to {Path(args.out).resolve()}")
    return 0


def cmd_critical(args) -> int:

    overrides = _overrides(args)
    wd = overrides.pop("weight_decay", 0.0)
    result = critical_prune_ratio(args.run, args.epoch, args.out, step=args.step, start=args.start,
                                  weight_decay=wd, scope=args.scope, **overrides)
    print(f"critical prune ratio: {result.prune_ratio} (step {result.step}, weight decay {wd})")
    return 0


def cmd_edge_popup(args) -> int:

    overrides = {"weights": args.weights}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    result = edge_popup(args.run, args.prune_ratio, args.out, epoch=args.epoch, resume=args.resume, **overrides)
    last = result.history[-1]
    print(f"edge-popup run written to {Path(args.out).resolve()}")
    print(f"epoch {last['epoch']}: train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}")
    return 0


def _fmt(x) -> str:
    return "None" if x is None else f"{x:.2f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grokinterp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _demo_parser(sub)
    _analyze_parser(sub)
    _ticket_parsers(sub)
    return parser


COMMANDS = {
    "train": cmd_train,
    "demo": cmd_demo,
    "analyze": cmd_analyze,
    "ticket": cmd_ticket,
    "sweep": cmd_sweep,
    "controls": cmd_controls,
    "critical": cmd_critical,
    "edge-popup": cmd_edge_popup,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GrokinterpError as e:
        print(f"grokinterp {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
