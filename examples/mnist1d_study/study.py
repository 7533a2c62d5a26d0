"""The study's protocol and outputs: pretrain once, fine-tune four arms per seed, excitation analysis, folding, tables and figures.

Arms (all from the same pretrained checkpoint, same steps, optimizer, schedule and batch order per seed):
  P  the plain network, every parameter trained;
  I  seinject.apply(rule=residual_branch), identity init, every parameter trained;
  R  the same blocks with init="random" (the paper's block, as inserted by hand), every parameter trained;
  S  identity init, only the SE blocks and the classifier head trained (frozen BatchNorm statistics too).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import seinject

from . import train as training
from .data import Split
from .model import ResNet1d

ARMS = {
    "P": "plain, all parameters",
    "I": "seinject identity init, all parameters",
    "R": "random-init SE (paper's block), all parameters",
    "S": "seinject identity init, SE blocks + head only",
}
HEAD = r"^fc\."
OUTPUTS = ("results.md", "results.json", "curves.png", "excitations.png")
BASELINE = 0.94  # Greydanus 2020: a CNN on MNIST-1D's 4,000 training samples


@dataclass
class Config:
    """Everything that sets the study's numbers (the defaults are the committed run)."""

    seeds: int = 5
    pretrain_seed: int = 1234
    pretrain_steps: int = 1000
    pretrain_lr: float = 3e-3
    pretrain_warmup: int = 100
    steps: int = 300
    lr: float = 3e-4  # a tenth of the pretraining peak: a modest fine-tuning rate, the same for every arm
    warmup: int = 30
    batch_size: int = 128
    weight_decay: float = 1e-4
    eval_every: int = 25
    eval_at: tuple[int, ...] = (1, 2, 5, 10)
    rule: str = "residual_branch"
    ratio: int = 4
    widths: tuple[int, int, int] = (16, 32, 48)
    blocks_per_stage: int = 2
    fold_min_saturation: float = 0.99
    timing_repeats: int = 30
    train_subset: int | None = None
    test_subset: int | None = None
    progress: bool = True


@dataclass
class Run:
    """One arm fine-tuned with one seed."""

    arm: str
    seed: int
    step0_accuracy: float
    step0_max_abs_logit_diff: float
    final_accuracy: float
    final_train_accuracy: float
    steps: list[int]
    curve: list[float]
    train_seconds: float
    trainable_params: int
    added_params: int


@dataclass
class Study:
    """All numbers of one study run (results.json is asdict of this)."""

    config: dict
    environment: dict
    pretrain: dict = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    arms: dict = field(default_factory=dict)
    excitation: dict = field(default_factory=dict)
    fold: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    command: str = "python -m examples.mnist1d_study"


def build_arm(arm: str, base: nn.Module, seed: int, config: Config, example: torch.Tensor) -> nn.Module:
    """A fresh copy of the pretrained model set up as `arm` (P, I, R or S); seeded, so R's random blocks depend on seed.

    I and S are verified by seinject on `example`: outputs exactly equal to the plain model's.
    """
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {', '.join(ARMS)}, got {arm!r}")
    training.seed_everything(seed)
    model = copy.deepcopy(base)
    if arm != "P":
        identity = arm != "R"
        model = seinject.apply(model, rule=config.rule, ratio=config.ratio, init="identity" if identity else "random",
                               example_inputs=(example,) if identity else None, verify=identity, strict=True)
    if arm == "S":
        seinject.mark_trainable(model, also=[HEAD], freeze_norm_stats=True)
    return model


def count(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, parameters seinject added).

    Example:
        >>> net = seinject.apply(nn.Sequential(nn.Conv1d(1, 8, 3), nn.ReLU()), rule="conv_block")
        >>> count(net)
        (57, 25)
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for _, p in seinject.se_parameters(model))


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's outputs in eval mode (train/eval flags restored)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        return model(x)
    finally:
        for module, mode in modes.items():
            module.training = mode


def pretrain(config: Config, train: Split, test: Split, progress=None) -> tuple[nn.Module, dict]:
    """Train the plain network once from `pretrain_seed`; returns (model in eval mode, its numbers)."""
    training.seed_everything(config.pretrain_seed)
    model = ResNet1d(config.widths, config.blocks_per_stage)
    task = progress.add_task("pretrain (plain)", total=config.pretrain_steps) if progress else None
    curve = training.fit(model, train, test, steps=config.pretrain_steps, lr=config.pretrain_lr,
                         seed=config.pretrain_seed, batch_size=config.batch_size, weight_decay=config.weight_decay,
                         warmup=config.pretrain_warmup, eval_every=max(1, config.pretrain_steps // 10),
                         progress=progress, task=task)
    return model, {"test_accuracy": curve.accuracy[-1], "train_accuracy": training.accuracy(model, train),
                   "params": sum(p.numel() for p in model.parameters()), "steps": curve.steps,
                   "curve": curve.accuracy, "train_seconds": curve.train_seconds}


def finetune(arm: str, seed: int, base: nn.Module, config: Config, train: Split, test: Split,
             progress=None, task=None) -> tuple[Run, nn.Module]:
    """Fine-tune one arm from the pretrained `base` with one seed; returns (its Run, the fine-tuned model)."""
    model = build_arm(arm, base, seed, config, test.x[:8])
    trainable, added = count(model)
    diff = float((logits(model, test.x) - logits(base, test.x)).abs().max())
    curve = training.fit(model, train, test, steps=config.steps, lr=config.lr, seed=seed,
                         batch_size=config.batch_size, weight_decay=config.weight_decay, warmup=config.warmup,
                         eval_every=config.eval_every, eval_at=config.eval_at, progress=progress, task=task)
    run = Run(arm, seed, curve.accuracy[0], diff, curve.accuracy[-1], training.accuracy(model, train),
              curve.steps, curve.accuracy, curve.train_seconds, trainable, added)
    return run, model


def summarise(runs: list[Run], base_accuracy: float) -> dict:
    """Per arm: step-0 and final accuracy (mean, std over seeds), the paired difference to P, params, seconds."""
    def mean_std(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}

    plain = {r.seed: r.final_accuracy for r in runs if r.arm == "P"}
    out = {}
    for arm in ARMS:
        mine = [r for r in runs if r.arm == arm]
        if not mine:
            continue
        paired = [r.final_accuracy - plain[r.seed] for r in mine if r.seed in plain]
        out[arm] = {
            "description": ARMS[arm],
            "step0_accuracy": mean_std([r.step0_accuracy for r in mine]),
            "step0_equals_pretrained": all(r.step0_accuracy == base_accuracy for r in mine),
            "step0_max_abs_logit_diff": max(r.step0_max_abs_logit_diff for r in mine),
            "final_accuracy": mean_std([r.final_accuracy for r in mine]),
            "final_minus_plain": mean_std(paired) if paired else None,
            "seeds_above_plain": sum(d > 0 for d in paired),
            "seeds_below_plain": sum(d < 0 for d in paired),
            "final_train_accuracy": mean_std([r.final_train_accuracy for r in mine]),
            "trainable_params": mine[0].trainable_params,
            "added_params": mine[0].added_params,
            "train_seconds": mean_std([r.train_seconds for r in mine]),
            "ms_per_step": 1000 * statistics.fmean(r.train_seconds for r in mine) / max(1, mine[0].steps[-1]),
        }
    return out


def excitation_analysis(models: dict[int, nn.Module], test: Split) -> tuple[dict, Any]:
    """Specificity and saturation of every block per seed and averaged over seeds; returns (numbers, seed 0's Excitations)."""
    per_seed, first = {}, None
    for seed, model in sorted(models.items()):
        ex = seinject.excitations(model, test.x, labels=test.y)
        first = first or ex
        mean = ex.mean()
        per_seed[seed] = {name: {"specificity": ex.specificity()[name], "saturation": ex.saturation()[name],
                                 "mean_gate": float(mean[name].mean()), "gate_min": float(mean[name].min()),
                                 "gate_max": float(mean[name].max()), "channels": int(mean[name].numel())}
                          for name in ex.blocks}
    blocks = first.blocks
    averaged = {}
    for name in blocks:
        row = {"channels": per_seed[min(per_seed)][name]["channels"]}
        for key in ("specificity", "saturation", "mean_gate"):
            values = [per_seed[s][name][key] for s in per_seed]
            row[key] = statistics.fmean(values)
            row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        averaged[name] = row
    return {"blocks": blocks, "averaged": averaged, "per_seed": {str(s): v for s, v in per_seed.items()},
            "seeds": sorted(per_seed), "table_seed0": first.table()}, first


def inference_seconds(models: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Per model, the median wall time (time.perf_counter) of one eval-mode pass over x in EVAL_BATCH batches;
    the models take turns in every round (after one warm-up round; each goes first in turn), so load from other
    processes hits them alike.

    Example:
        >>> sorted(inference_seconds({"a": nn.Flatten(), "b": nn.Identity()}, torch.zeros(4, 1, 3), 3))
        ['a', 'b']
    """
    def once(model: nn.Module) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(x), training.EVAL_BATCH):
                model(x[i:i + training.EVAL_BATCH])
        return time.perf_counter() - start

    for model in models.values():
        model.eval()
        once(model)
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for round_ in range(max(1, repeats)):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # each goes first in turn
            times[name].append(once(models[name]))
    return {name: statistics.median(values) for name, values in times.items()}


def fold_analysis(model: nn.Module, plain: nn.Module, excitation: dict, test: Split, config: Config) -> dict:
    """Fold each block alone (its cost), then the blocks whose saturation (mean over seeds) is at least
    fold_min_saturation, all together; time plain / SE / folded on the test set."""
    averaged = excitation["averaged"]
    single = []
    for name in excitation["blocks"]:
        _, report = seinject.fold(model, blocks=[name], data=test.x, labels=test.y)
        single.append({"block": name, "saturation": averaged[name]["saturation"],
                       "accuracy_after": report.accuracy_after, "max_abs_diff": report.max_abs_diff,
                       "into": report.folded[0].into})
    chosen = [n for n in excitation["blocks"] if averaged[n]["saturation"] >= config.fold_min_saturation]
    out = {"min_saturation": config.fold_min_saturation, "single": single, "chosen": chosen}
    if chosen:
        folded, report = seinject.fold(model, blocks=chosen, data=test.x, labels=test.y)
        out.update({"accuracy_before": report.accuracy_before, "accuracy_after": report.accuracy_after,
                    "max_abs_diff": report.max_abs_diff, "into": {f.block: f.into for f in report.folded},
                    "remaining_blocks": [n for n, _ in seinject.se_modules(folded)]})
    else:
        folded = model
    everything, report_all = seinject.fold(model, blocks=excitation["blocks"], data=test.x, labels=test.y)
    out["all"] = {"accuracy_after": report_all.accuracy_after, "max_abs_diff": report_all.max_abs_diff}
    models = {"plain": plain, "se": model, "folded": folded}
    if set(chosen) != set(excitation["blocks"]):
        models["all_folded"] = everything
    timing = inference_seconds(models, test.x, config.timing_repeats)
    timing.setdefault("all_folded", timing["folded"])
    out["seconds"] = timing
    out["samples"] = len(test)
    out["timing_note"] = (f"median of {config.timing_repeats} passes over the {len(test)} test samples, batch "
                          f"{min(training.EVAL_BATCH, len(test))}, {torch.get_num_threads()} thread(s)")
    return out


def run(config: Config, train: Split, test: Split) -> tuple[Study, Any]:
    """The whole protocol; returns (the numbers, seed 0's Excitations of the fine-tuned I model)."""
    started = time.perf_counter()
    train, test = train.subset(config.train_subset), test.subset(config.test_subset)
    study = Study(config=asdict(config), environment=environment())
    runs: list[Run] = []
    kept: dict[str, dict[int, nn.Module]] = {"P": {}, "I": {}, "R": {}}
    with training.progress_bar(config.progress) as progress:
        base, study.pretrain = pretrain(config, train, test, progress)
        base_accuracy = study.pretrain["test_accuracy"]
        task = progress.add_task("fine-tune", total=config.seeds * len(ARMS) * config.steps) if progress else None
        for seed in range(config.seeds):
            for arm in ARMS:
                if progress:
                    progress.update(task, description=f"fine-tune {arm} seed {seed}")
                result, model = finetune(arm, seed, base, config, train, test, progress, task)
                if arm in ("I", "S") and result.step0_accuracy != base_accuracy:
                    raise RuntimeError(f"arm {arm} seed {seed}: step-0 accuracy {result.step0_accuracy} differs "
                                       f"from the pretrained model's {base_accuracy}")
                runs.append(result)
                if arm in kept:
                    kept[arm][seed] = model
    study.runs = [asdict(r) for r in runs]
    study.arms = summarise(runs, base_accuracy)
    study.excitation, first = excitation_analysis(kept["I"], test)
    study.excitation["random_init"] = excitation_analysis(kept["R"], test)[0]["averaged"]
    study.fold = fold_analysis(kept["I"][0], kept["P"][0], study.excitation, test, config)
    study.wall_seconds = time.perf_counter() - started
    return study, first


def environment() -> dict:
    """Where the numbers were measured."""
    return {"torch": torch.__version__, "seinject": seinject.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine()}


# ---------------------------------------------------------------- outputs

def write(study: Study, excitations: Any, out: "str | Path") -> list[Path]:
    """Write results.md, results.json, curves.png and excitations.png into `out`: all are written to a
    temporary folder beside it first and moved in only when every one is complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (staging / "results.json").write_text(json.dumps(asdict(study), indent=1) + "\n")
        (staging / "results.md").write_text(markdown(study))
        plot_curves(study, staging / "curves.png")
        excitations.plot(staging / "excitations.png")
        out.mkdir(exist_ok=True)
        for name in OUTPUTS:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / name for name in OUTPUTS]


def plot_curves(study: Study, path: Path) -> None:
    """Test accuracy against fine-tuning step, mean ± std over seeds per arm; step 0 marked; right panel: the first steps."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    colours = {"P": "black", "I": "tab:blue", "R": "tab:red", "S": "tab:green"}
    config = study.config
    early = max(config["eval_at"] or (0,)) * 5 or config["eval_every"] * 2
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    for arm in ARMS:
        mine = [r for r in study.runs if r["arm"] == arm]
        if not mine:
            continue
        steps = torch.tensor(mine[0]["steps"], dtype=torch.float64)
        curves = torch.tensor([r["curve"] for r in mine], dtype=torch.float64) * 100
        mean = curves.mean(0)
        std = curves.std(0) if len(mine) > 1 else torch.zeros_like(mean)
        label = f"{arm}: {ARMS[arm]}"
        for ax, keep in ((axes[0], steps >= 0), (axes[1], steps <= early)):
            ax.plot(steps[keep], mean[keep], color=colours[arm], lw=1.4, label=label,
                    marker="o" if ax is axes[1] else None, ms=3)
            ax.fill_between(steps[keep], (mean - std)[keep], (mean + std)[keep], color=colours[arm], alpha=0.18, lw=0)
            ax.plot([0], [mean[0]], marker="*", ms=11, color=colours[arm], mec="white", mew=0.6, zorder=5)
    base = study.pretrain["test_accuracy"] * 100
    for ax in axes:
        ax.axhline(base, color="grey", ls=":", lw=1)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_xlabel("fine-tuning step")
        ax.grid(alpha=0.3)
    axes[0].axhline(BASELINE * 100, color="tab:purple", ls="--", lw=0.9)
    axes[0].text(config["steps"], BASELINE * 100, "published CNN ~94 %", ha="right", va="bottom", fontsize=7,
                 color="tab:purple", clip_on=True)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title(f"MNIST-1D fine-tuning, {config['seeds']} seeds, mean ± std "
                      f"(★ step 0, dotted: pretrained)", fontsize=9)
    axes[1].set_title(f"first {early} steps", fontsize=9)
    lows = [min(r["curve"]) * 100 for r in study.runs]
    late = [a * 100 for r in study.runs for t, a in zip(r["steps"], r["curve"]) if t > early]
    bottom = min(late + [base, BASELINE * 100]) - 1.5 if late else max(0, min(lows) - 2)
    axes[0].set_ylim(bottom, min(100, max(late + [base]) + 1.0) if late else 100)
    if min(lows) < bottom:
        axes[0].text(0.01, 0.02, "lower values (R's first steps): right panel", transform=axes[0].transAxes,
                     fontsize=7, color="grey")
    axes[1].set_ylim(max(0, min(lows) - 2), 100)
    axes[1].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def markdown(study: Study) -> str:
    """results.md: the configuration, the per-arm table, excitation by depth, the fold result."""
    c, p = study.config, study.pretrain
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    ms = lambda d: f"{100 * d['mean']:.2f} ± {100 * d['std']:.2f}"  # noqa: E731
    lines = [
        "# MNIST-1D fine-tuning study",
        "",
        f"Written by `{study.command}` (`bash scripts/study.sh` runs it); every number is in `results.json`.",
        "",
        f"- Data: MNIST-1D generated offline (`mnist1d.make_dataset`, default arguments), "
        f"{study.config['train_subset'] or 4000} train / {study.config['test_subset'] or 1000} test samples.",
        f"- Model: 1-D ResNet (widths {tuple(c['widths'])}, {c['blocks_per_stage']} basic blocks per stage), "
        f"{p['params']:,} parameters.",
        f"- Pretraining: {c['pretrain_steps']} AdamW steps, batch {c['batch_size']}, lr {c['pretrain_lr']:g} "
        f"(warm-up {c['pretrain_warmup']}, cosine), weight decay {c['weight_decay']:g}, seed {c['pretrain_seed']}: "
        f"test accuracy **{pct(p['test_accuracy'])} %** (train {pct(p['train_accuracy'])} %; published CNN "
        f"baseline ~{100 * BASELINE:.0f} %).",
        f"- Fine-tuning, every arm: {c['steps']} AdamW steps from that checkpoint, lr {c['lr']:g} for all "
        f"parameters (warm-up {c['warmup']}, cosine to 0), weight decay {c['weight_decay']:g}, batch "
        f"{c['batch_size']}, {c['seeds']} seeds (seed = batch order, and R's block init).",
        f"- SE: rule `{c['rule']}` (the paper's standard placement: end of the residual branch, before the "
        f"addition), ratio {c['ratio']}.",
        "",
        "## Arms",
        "",
        "| arm | step-0 acc % | final acc % (mean ± std) | final − P (paired) | seeds > P / < P | "
        "final train acc % | added params | trainable params | train s / run | ms / step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in study.arms.items():
        step0 = pct(a["step0_accuracy"]["mean"]) if a["step0_accuracy"]["std"] == 0 else ms(a["step0_accuracy"])
        paired = a["final_minus_plain"]
        diff = "—" if arm == "P" else f"{100 * paired['mean']:+.2f} ± {100 * paired['std']:.2f}"
        count_ = "—" if arm == "P" else f"{a['seeds_above_plain']} / {a['seeds_below_plain']}"
        same = " (= pretrained)" if a["step0_equals_pretrained"] else ""
        lines.append(
            f"| {arm}: {a['description']} | {step0}{same} | {ms(a['final_accuracy'])} | {diff} | {count_} | "
            f"{ms(a['final_train_accuracy'])} | {a['added_params']:,} | {a['trainable_params']:,} | "
            f"{a['train_seconds']['mean']:.1f} | {a['ms_per_step']:.1f} |")
    lines += ["", "Step-0 max |Δ logits| against the pretrained model on the test set: "
              + ", ".join(f"{arm} {a['step0_max_abs_logit_diff']:.3g}" for arm, a in study.arms.items()) + ".", ""]
    e = study.excitation
    lines += [
        "## Excitation by depth (fine-tuned I model)",
        "",
        f"Mean over {len(e['seeds'])} seed(s); gates are the sigmoid outputs in [0, 1] (0.5 = identity). "
        "Specificity: the correlation ratio η² of each channel's gate with the class, averaged over channels. "
        "Saturation: 1 − mean channel std of the gate across samples / 0.5. R: the same for the random-init arm, mean over the same seeds.",
        "",
        "| # | block | channels | mean gate | specificity I | saturation I | specificity R | saturation R |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, name in enumerate(e["blocks"]):
        row, r = e["averaged"][name], e.get("random_init", {}).get(name, {})
        lines.append(f"| {i} | `{name}` | {row['channels']} | {row['mean_gate']:.3f} | "
                     f"{row['specificity']:.3f} ± {row['specificity_std']:.3f} | "
                     f"{row['saturation']:.4f} ± {row['saturation_std']:.4f} | "
                     f"{r.get('specificity', float('nan')):.3f} | {r.get('saturation', float('nan')):.4f} |")
    f = study.fold
    lines += ["", "## Folding saturated blocks (fine-tuned I model, seed 0)", "",
              "Each block folded alone (its mean scale multiplied into a neighbouring conv/norm):", "",
              "| block | saturation | test acc after % | max abs Δ logits | into |", "|---|---|---|---|---|"]
    for one in f["single"]:
        lines.append(f"| `{one['block']}` | {one['saturation']:.4f} | {pct(one['accuracy_after'])} | "
                     f"{one['max_abs_diff']:.3g} | {one['into']} |")
    t = f["seconds"]
    lines += [""]
    if f["chosen"]:
        names = ", ".join(f"`{n}`" for n in f["chosen"])
        lines.append(f"Blocks with saturation ≥ {f['min_saturation']} folded together ({names}): "
                     f"test accuracy {pct(f['accuracy_before'])} % → {pct(f['accuracy_after'])} %, "
                     f"max |Δ logits| {f['max_abs_diff']:.3g}.")
    else:
        lines.append(f"No block reached saturation {f['min_saturation']}: nothing folded by the threshold.")
    lines += [f"All blocks folded: test accuracy {pct(f['all']['accuracy_after'])} %, max |Δ logits| "
              f"{f['all']['max_abs_diff']:.3g}.", "",
              "| model | inference ms (test set) |", "|---|---|",
              f"| plain (P, seed 0) | {1000 * t['plain']:.2f} |",
              f"| with SE (I, seed 0) | {1000 * t['se']:.2f} |",
              f"| {'threshold' if f['chosen'] != e['blocks'] else 'all'} blocks folded | {1000 * t['folded']:.2f} |"]
    if f["chosen"] != e["blocks"]:
        lines.append(f"| all blocks folded | {1000 * t['all_folded']:.2f} |")
    lines += ["",
              f"Timing: {f['timing_note']}.", "",
              f"Environment: torch {study.environment['torch']}, {study.environment['threads']} thread(s) of "
              f"{study.environment['cpus']} CPUs; whole run {study.wall_seconds:.0f} s (data generation included).", ""]
    return "\n".join(lines)
