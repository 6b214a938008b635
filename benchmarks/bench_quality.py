"""Quality on the embedded default task: the AP each encoder reaches, and which knobs matter.

    make run        # first: the synthetic clips, split and feature stores
    python benchmarks/bench_quality.py --out results/bench/quality.json [--seeds 3]

Part 1 trains every encoder with one reasonable config (below) on the
default stores, `--seeds` training seeds each, and reports validation and
test AP (mean and spread over seeds; chance is the positive rate, about 0.5),
beside two references outside the search space on the same splits and seeds:
a linear probe on the last step and its change over 2 s, and a plain GRU;
then the best encoder against the probe, test AP paired by seed (paired t
and Wilcoxon signed-rank, scipy).
Part 2 changes one knob at a time from the base config of `--knob-encoder`
and reports the change in mean validation and test AP over the same seeds,
beside the seed-to-seed spread of the base, so a difference can be read
against the noise of a 40-clip validation split. Writes JSON and a Markdown
table (same name, .md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy import stats

from expsearch.atomic import atomic_write_text
from expsearch.features.store import stores_under
from expsearch.params import load_params
from expsearch.settings import training_settings
from expsearch.space import Space
from expsearch.training.data import window
from expsearch.training.experiment import TaskCache, run_experiment
from expsearch.training.metrics import average_precision

BASE = {
    "backbone": "dinov3_b", "encoder": "zipformer", "pooling": "last", "width": 64,
    "depth": 1, "dropout": 0.0, "loss": "focal", "focal_gamma": 2.0, "focal_alpha": 0.5,
    "learning_rate": 1.0e-3, "weight_decay": 0.01, "batch_size": 32, "scheduler": "cosine",
    "seq_len": 20, "epochs": 15, "oversample_ratio": 1.0, "mixup_alpha": 0.0,
    "feature_noise": 0.0,
}  # fmt: skip
KNOBS = [
    {"backbone": "vjepa2"}, {"backbone": "dinov3_l"}, {"backbone": "siglip2"},
    {"backbone": "convnext"}, {"pooling": "mean"}, {"pooling": "attention"}, {"dropout": 0.3},
    {"seq_len": 10}, {"seq_len": 30}, {"width": 128, "depth": 2},
    {"loss": "bce"}, {"learning_rate": 1.0e-4}, {"mixup_alpha": 0.4, "feature_noise": 0.1},
]  # fmt: skip


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


def reference_runs(task, seeds: int, kind: str) -> dict:
    """A reference outside the search space, same splits and seeds: `probe` (logistic
    regression on the last step and its 2-s change, 30 epochs) or `gru` (a 1-layer
    GRU of width 64, 15 epochs); AdamW lr 1e-3, batch 32, BCE, seq_len 20."""

    def inputs(split):
        x, _ = window(split.features, split.lengths, 20)
        return x, split.targets

    (x, y), test = inputs(task.train), task.split("test", unseal=True)
    aps = {"val": [], "test": []}
    for seed in range(seeds):
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
        with torch.no_grad():
            for name, split in (("val", task.val), ("test", test)):
                features, targets = inputs(split)
                scores = model(features).squeeze(-1).numpy()
                aps[name].append(average_precision(targets.numpy(), scores))
    return _summary(aps)


def paired(a: list[float], b: list[float]) -> dict:
    """a - b paired by seed: mean, sd, and the paired t and Wilcoxon signed-rank p."""
    diff = [x - y for x, y in zip(a, b, strict=True)]
    out = {"mean_difference": statistics.mean(diff), "sd": statistics.stdev(diff)}
    out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue) if any(diff) else 1.0
    return out


def complete(space: Space, config: dict) -> dict:
    """Drop conditional keys that no longer apply (focal_* when the loss is not focal)."""
    return {k: v for k, v in config.items() if space.dimensions[k].applies(config)}


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
        "val_positive_rate": runs[0]["val"]["positives"] / runs[0]["val"]["clips"],
    }


def _show(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(results: dict) -> str:
    lines = [
        "# Quality on the embedded default task",
        "",
        f"Base config: `{json.dumps(results['base'])}`; {results['seeds']} seeds per row; "
        f"validation positive rate {results['val_positive_rate']:.2f} (the AP of chance).",
        "",
        "| encoder | val AP | test AP | test horizon mAP | s/run |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["encoders"].items():
        lines.append(
            f"| {name} | {r['val_ap']:.3f} ± {r['val_ap_sd']:.3f} | {r['test_ap']:.3f} ± "
            f"{r['test_ap_sd']:.3f} | {_show(r['test_horizon_map'])} | {r['seconds']:.1f} |"
        )
    for name, r in results["references"].items():
        lines.append(
            f"| {name} | {r['val_ap']:.3f} ± {r['val_ap_sd']:.3f} | {r['test_ap']:.3f} ± "
            f"{r['test_ap_sd']:.3f} | n/a | |"
        )
    p = results["best_encoder_vs_probe"]
    lines += [
        "",
        f"Best encoder ({p['encoder']}) minus the probe, test AP paired by seed: "
        f"{p['mean_difference']:+.3f} ± {p['sd']:.3f} (paired t p = {p['t_p']:.3g}, "
        f"Wilcoxon p = {p['wilcoxon_p']:.3g}); the probe's seed sd {p['probe_test_ap_sd']:.3f}.",
        "",
        f"One knob at a time from the base ({results['knob_encoder']}):",
        "",
        "| change | val AP | Δ val | test AP | Δ test |",
        "|---|---|---|---|---|",
    ]
    base = results["encoders"][results["knob_encoder"]]
    for r in results["knobs"]:
        lines.append(
            f"| {r['change']} | {r['val_ap']:.3f} | {r['val_ap'] - base['val_ap']:+.3f} | "
            f"{r['test_ap']:.3f} | {r['test_ap'] - base['test_ap']:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/quality.json")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--knob-encoder", default="zipformer")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    params = load_params(args.params)
    space = Space.from_params(params)
    settings = training_settings(params["training"], device=args.device)
    split = Path("results/split")
    if not (split / "manifest.json").exists():
        raise SystemExit("no results/split/manifest.json: run `make run` first")
    tasks = TaskCache(
        stores_under(params["features"]["root"]), split / "manifest.json", split / "clips.csv"
    )
    results = {"base": BASE, "seeds": args.seeds, "knob_encoder": args.knob_encoder}
    results["encoders"], results["knobs"] = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        references = {kind: reference_runs(tasks(BASE["backbone"]), args.seeds, kind)
                      for kind in ("probe", "gru")}  # fmt: skip
        for kind, r in references.items():
            print(f"{kind}: val AP {r['val_ap']:.3f}, test AP {r['test_ap']:.3f}", flush=True)
        for encoder in space.dimensions["encoder"].values:
            r = trained(space, tasks, settings, {**BASE, "encoder": encoder}, args.seeds, tmp)
            results["encoders"][encoder] = r
            print(f"{encoder}: val AP {r['val_ap']:.3f}, test AP {r['test_ap']:.3f}", flush=True)
        for change in KNOBS:
            config = {**BASE, "encoder": args.knob_encoder, **change}
            r = trained(space, tasks, settings, config, args.seeds, tmp)
            r["change"] = ", ".join(f"{k}={v}" for k, v in change.items())
            results["knobs"].append(r)
            print(
                f"{r['change']}: val AP {r['val_ap']:.3f}, test AP {r['test_ap']:.3f}", flush=True
            )
    results["val_positive_rate"] = results["encoders"][args.knob_encoder]["val_positive_rate"]
    best = max(results["encoders"], key=lambda name: results["encoders"][name]["test_ap"])
    results["best_encoder_vs_probe"] = {
        "encoder": best,
        **paired(results["encoders"][best]["test_aps"], references["probe"]["test_aps"]),
        "probe_test_ap_sd": references["probe"]["test_ap_sd"],
    }
    results["references"] = {
        f"linear probe on the last step and its 2-s change ({BASE['backbone']})": references[
            "probe"
        ],
        f"GRU, width 64 ({BASE['backbone']})": references["gru"],
    }
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
