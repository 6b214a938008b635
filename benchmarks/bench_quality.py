"""Quality on the embedded default task: the AP each encoder reaches, told apart by cross-validation.

    make run        # first: the synthetic clips, split and feature stores
    python benchmarks/bench_quality.py --out results/bench/quality.json [--folds 10] [--knobs]

Part 1, 10-fold cross-validation over every clip (expsearch.training.crossval:
fold f is the test split, fold f+1 the validation split, the rest training,
seed = fold): each encoder trains a few candidate configs (CANDIDATES on top of
BASE) on every fold, and in each fold the candidate with the best validation
AP is kept and scored on that fold's test clips; the campaign's protocol,
repeated over ten disjoint test sets. Beside them, on the same folds, two
references outside the search space: a linear probe on the last step and its
change over 2 s, and a plain GRU. The encoder with the best mean validation
AP is compared with the probe, test AP paired by fold (plain and
Nadeau-Bengio corrected t, Wilcoxon). `--workers` processes, one thread each.
Part 2 (`--knobs`) changes one knob at a time from the base config of
`--knob-encoder` on the campaign's fixed split, `--seeds` seeds each, and
reports the change in mean validation and test AP. Writes JSON and a
Markdown table (same name, .md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy import stats

from expsearch.atomic import atomic_write_text
from expsearch.features.store import stores_under
from expsearch.params import load_params
from expsearch.settings import training_settings
from expsearch.space import Space
from expsearch.training.crossval import FoldRun, corrected_t, fold_tasks, select_per_fold
from expsearch.training.data import Task, window
from expsearch.training.experiment import TaskCache, run_experiment
from expsearch.training.metrics import average_precision
from expsearch.training.trainer import evaluate, fit_config

BASE = {
    "backbone": "dinov3_b", "encoder": "zipformer", "pooling": "last", "width": 64,
    "depth": 1, "dropout": 0.0, "loss": "focal", "focal_gamma": 2.0, "focal_alpha": 0.5,
    "learning_rate": 1.0e-3, "weight_decay": 0.01, "batch_size": 32, "scheduler": "cosine",
    "seq_len": 20, "epochs": 15, "oversample_ratio": 1.0, "mixup_alpha": 0.0,
    "feature_noise": 0.0,
}  # fmt: skip
# Each encoder's candidates, chosen among per fold on validation AP: the base
# and the two knobs that helped every gated encoder in a one-knob sweep on the
# fixed split (width 128, BCE), alone and together.
CANDIDATES = [{}, {"loss": "bce"}, {"width": 128}, {"width": 128, "loss": "bce"}]
KNOBS = [
    {"backbone": "vjepa2"}, {"backbone": "dinov3_l"}, {"backbone": "siglip2"},
    {"backbone": "convnext"}, {"pooling": "mean"}, {"pooling": "attention"}, {"dropout": 0.3},
    {"seq_len": 10}, {"seq_len": 30}, {"width": 128, "depth": 2},
    {"loss": "bce"}, {"learning_rate": 1.0e-4}, {"mixup_alpha": 0.4, "feature_noise": 0.1},
]  # fmt: skip
REFERENCES = {
    "probe": "linear probe on the last step and its 2-s change",
    "gru": "GRU, width 64",
}


def _summary(aps: dict[str, list[float]], seconds: float = 0.0) -> dict:
    return {
        "val_ap": statistics.mean(aps["val"]),
        "val_ap_sd": statistics.stdev(aps["val"]) if len(aps["val"]) > 1 else 0.0,
        "test_ap": statistics.mean(aps["test"]),
        "test_ap_sd": statistics.stdev(aps["test"]) if len(aps["test"]) > 1 else 0.0,
        "val_aps": aps["val"],
        "test_aps": aps["test"],
        "test_horizon_map": None,
        "seconds": seconds,
    }


class _ProbeInputs(torch.nn.Module):
    """The last step and its change over the last 2 s (10 steps)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, -1], x[:, -1] - x[:, -10]], 1)


class _GRUReference(torch.nn.Module):
    """A plain causal GRU over the window; the last step (windows are left-padded) to a logit."""

    def __init__(self, features: int, width: int = 64):
        super().__init__()
        self.proj = torch.nn.Linear(features, width)
        self.gru = torch.nn.GRU(width, width, batch_first=True)
        self.head = torch.nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(self.proj(x))[0][:, -1])


def reference_run(task: Task, seed: int, kind: str) -> tuple[float, float]:
    """Validation and test AP of a reference outside the search space: `probe`
    (logistic regression on the last step and its 2-s change, 30 epochs) or
    `gru` (a 1-layer GRU of width 64, 15 epochs); AdamW lr 1e-3, batch 32,
    BCE, seq_len 20, the last epoch's weights."""

    def inputs(split):
        x, _ = window(split.features, split.lengths, 20)
        return x, split.targets

    x, y = inputs(task.train)
    torch.manual_seed(seed)
    if kind == "probe":
        model = torch.nn.Sequential(_ProbeInputs(), torch.nn.Linear(2 * x.shape[2], 1))
        epochs = 30
    elif kind == "gru":
        model, epochs = _GRUReference(x.shape[2]), 15
    else:
        raise ValueError(f"unknown reference {kind!r}: probe or gru")
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x)).split(32):
            loss = F.binary_cross_entropy_with_logits(model(x[batch]).squeeze(-1), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    aps = []
    with torch.no_grad():
        for split in (task.val, task.split("test", unseal=True)):
            features, targets = inputs(split)
            aps.append(average_precision(targets.numpy(), model(features).squeeze(-1).numpy()))
    return aps[0], aps[1]


def paired(a: list[float], b: list[float], test_fraction: float | None = None) -> dict:
    """a - b paired by fold or seed: mean, sd, the paired t and Wilcoxon
    signed-rank p, and with `test_fraction` the corrected resampled t."""
    diff = [x - y for x, y in zip(a, b, strict=True)]
    out = {"mean_difference": statistics.mean(diff), "sd": statistics.stdev(diff)}
    out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue) if any(diff) else 1.0
    if test_fraction is not None:
        out["corrected_t_p"] = corrected_t(diff, test_fraction)["p"]
    return out


def complete(space: Space, config: dict) -> dict:
    """Drop conditional keys that no longer apply (focal_* when the loss is not focal)."""
    return {k: v for k, v in config.items() if space.dimensions[k].applies(config)}


# --- part 1: cross-validation, one unit of work (a config or a reference on a fold) per call

_WORKER: dict = {}


def _init_worker(params_path: str, folds_args: dict) -> None:
    torch.set_num_threads(1)
    params = load_params(params_path)
    _WORKER.update(
        space=Space.from_params(params),
        settings=training_settings(params["training"], device="cpu"),
        folds_args=folds_args,
    )


@cache
def _folds(backbone: str) -> list[Task]:
    args = dict(_WORKER["folds_args"])
    return fold_tasks(args.pop("stores")[backbone], **args)


def _unit(job: tuple) -> tuple:
    kind, name, candidate, fold = job
    task = _folds(BASE["backbone"])[fold]
    settings = dataclasses.replace(_WORKER["settings"], seed=fold)
    if kind == "reference":
        return job, reference_run(task, fold, name)
    space = _WORKER["space"]
    config = space.validate(complete(space, {**BASE, "encoder": name, **CANDIDATES[candidate]}))
    fit = fit_config(config, task, settings)
    test = evaluate(fit.model, task.split("test", unseal=True), fit.seq_len, settings)
    return job, (fit.val.ap, test.ap)


def cross_validated(args, space: Space, stores: dict) -> dict:
    folds_args = {"stores": stores, "manifest_path": "results/split/manifest.json",
                  "clips_path": "results/split/clips.csv", "k": args.folds, "seed": 0}  # fmt: skip
    encoders = list(space.dimensions["encoder"].values)
    jobs = [("reference", kind, 0, f) for kind in REFERENCES for f in range(args.folds)]
    jobs += [("encoder", e, c, f) for e in encoders for c in range(len(CANDIDATES))
             for f in range(args.folds)]  # fmt: skip
    done: dict[tuple, tuple[float, float]] = {}
    with ProcessPoolExecutor(args.workers, initializer=_init_worker,
                             initargs=(args.params, folds_args)) as pool:  # fmt: skip
        for job, aps in pool.map(_unit, jobs):
            done[job] = aps
            print(f"{len(done)}/{len(jobs)} {job}: val AP {aps[0]:.3f}, test AP {aps[1]:.3f}",
                  flush=True)  # fmt: skip
    out: dict = {"folds": args.folds, "candidates": CANDIDATES, "encoders": {}, "references": {}}
    for kind in REFERENCES:
        aps = [done[("reference", kind, 0, f)] for f in range(args.folds)]
        out["references"][kind] = _summary(
            {"val": [a[0] for a in aps], "test": [a[1] for a in aps]}
        )
    for e in encoders:
        runs = [FoldRun(c, f, *done[("encoder", e, c, f)], 0)
                for c in range(len(CANDIDATES)) for f in range(args.folds)]  # fmt: skip
        chosen = select_per_fold(runs)
        out["encoders"][e] = {
            **_summary({"val": [r.val_ap for r in chosen], "test": [r.test_ap for r in chosen]}),
            "chosen": dict(Counter(json.dumps(CANDIDATES[r.candidate]) for r in chosen)),
            "per_candidate": [
                {"candidate": CANDIDATES[c],
                 "val_ap": statistics.mean(r.val_ap for r in runs if r.candidate == c),
                 "test_ap": statistics.mean(r.test_ap for r in runs if r.candidate == c)}
                for c in range(len(CANDIDATES))
            ],
        }  # fmt: skip
    best = max(encoders, key=lambda e: out["encoders"][e]["val_ap"])
    top = max(out["encoders"][e]["test_ap"] for e in encoders)
    for e in encoders:
        out["encoders"][e]["gap_to_best_test_ap"] = top - out["encoders"][e]["test_ap"]
    probe = out["references"]["probe"]
    out["best_encoder_vs_probe"] = {
        "encoder": best,
        **paired(out["encoders"][best]["test_aps"], probe["test_aps"], 1 / args.folds),
        "probe_test_ap_sd": probe["test_ap_sd"],
        "encoder_test_ap_sd": out["encoders"][best]["test_ap_sd"],
    }
    return out


# --- part 2: one knob at a time on the campaign's fixed split


def trained(space, tasks, settings, config, seeds, workdir) -> dict:
    runs = []
    for seed in range(seeds):
        metrics = run_experiment(
            complete(space, config),
            space,
            tasks,
            dataclasses.replace(settings, seed=seed),
            Path(workdir) / f"s{seed}",
        )
        if metrics["status"] != "ok":
            raise SystemExit(f"{config}: {metrics['error']}")
        runs.append(metrics)
    aps = {"val": [m["val_ap"] for m in runs], "test": [m["test_ap"] for m in runs]}
    return {
        **_summary(aps, statistics.mean(m["seconds"] for m in runs)),
        "test_horizon_map": statistics.mean(m["test_horizon_map"] or 0 for m in runs),
    }


def knob_sweep(args, space: Space, stores: dict, settings) -> dict:
    split = Path("results/split")
    tasks = TaskCache(stores, split / "manifest.json", split / "clips.csv")
    out = {"encoder": args.knob_encoder, "seeds": args.seeds, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = {**BASE, "encoder": args.knob_encoder}
        out["base"] = trained(space, tasks, settings, base, args.seeds, tmp)
        for change in KNOBS:
            r = trained(space, tasks, settings, {**base, **change}, args.seeds, tmp)
            r["change"] = ", ".join(f"{k}={v}" for k, v in change.items())
            out["rows"].append(r)
            print(
                f"{r['change']}: val AP {r['val_ap']:.3f}, test AP {r['test_ap']:.3f}", flush=True
            )
    return out


def _pm(r: dict, key: str) -> str:
    return f"{r[key]:.3f} ± {r[key + '_sd']:.3f}"


def markdown(results: dict) -> str:
    cv = results["cross_validation"]
    lines = [
        "# Quality on the embedded default task",
        "",
        f"Base config: `{json.dumps(results['base'])}`. {cv['folds']}-fold cross-validation "
        "over every clip (fold f test, fold f+1 validation, seed f); per fold, each encoder's "
        f"candidate with the best validation AP (candidates on top of the base: "
        f"{', '.join(json.dumps(c) for c in cv['candidates'])}). Mean ± sd over folds.",
        "",
        "| encoder | val AP | test AP | gap to best | chosen (folds) |",
        "|---|---|---|---|---|",
    ]
    for name, r in cv["encoders"].items():
        chosen = "; ".join(f"{c} {n}" for c, n in sorted(r["chosen"].items(), key=lambda x: -x[1]))
        lines.append(f"| {name} | {_pm(r, 'val_ap')} | {_pm(r, 'test_ap')} | "
                     f"{r['gap_to_best_test_ap']:.3f} | {chosen} |")  # fmt: skip
    for kind, r in cv["references"].items():
        lines.append(f"| reference: {REFERENCES[kind]} | {_pm(r, 'val_ap')} | "
                     f"{_pm(r, 'test_ap')} | | |")  # fmt: skip
    p = cv["best_encoder_vs_probe"]
    lines += [
        "",
        f"Best encoder by validation AP ({p['encoder']}) minus the probe, test AP paired by "
        f"fold: {p['mean_difference']:+.3f} ± {p['sd']:.3f} (paired t p = {p['t_p']:.3g}, "
        f"corrected resampled t p = {p['corrected_t_p']:.3g}, Wilcoxon p = "
        f"{p['wilcoxon_p']:.3g}); fold-to-fold sd of the probe {p['probe_test_ap_sd']:.3f}, "
        f"of the encoder {p['encoder_test_ap_sd']:.3f}.",
    ]
    if "knobs" in results:
        k = results["knobs"]
        lines += [
            "",
            f"One knob at a time from the base ({k['encoder']}), fixed split, "
            f"{k['seeds']} seeds; base val AP {k['base']['val_ap']:.3f}, test AP "
            f"{k['base']['test_ap']:.3f}:",
            "",
            "| change | val AP | Δ val | test AP | Δ test |",
            "|---|---|---|---|---|",
        ]
        for r in k["rows"]:
            lines.append(
                f"| {r['change']} | {r['val_ap']:.3f} | {r['val_ap'] - k['base']['val_ap']:+.3f} | "
                f"{r['test_ap']:.3f} | {r['test_ap'] - k['base']['test_ap']:+.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/quality.json")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--knobs", action="store_true", help="also part 2, the knob sweep")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per knob (part 2)")
    parser.add_argument("--knob-encoder", default="bimamba")
    args = parser.parse_args()
    params = load_params(args.params)
    space = Space.from_params(params)
    if not Path("results/split/manifest.json").exists():
        raise SystemExit("no results/split/manifest.json: run `make run` first")
    stores = stores_under(params["features"]["root"])
    results = {"base": BASE, "cross_validation": cross_validated(args, space, stores)}
    if args.knobs:
        settings = training_settings(params["training"], device="cpu")
        results["knobs"] = knob_sweep(args, space, stores, settings)
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
