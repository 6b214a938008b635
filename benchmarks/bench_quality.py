"""Quality on the embedded default task: the AP each encoder reaches, and which knobs matter.

    make run        # first: the synthetic clips, split and feature stores
    python benchmarks/bench_quality.py --out results/bench/quality.json [--seeds 3]

Part 1 trains every encoder with one reasonable config (below) on the
default stores, `--seeds` training seeds each, and reports validation and
test AP (mean and spread over seeds; chance is the positive rate, about 0.5),
beside a reference without any temporal encoder (a linear probe on the last
step and its change over 2 s).
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


def probe_baseline(task, seeds: int) -> dict:
    """Reference without a temporal encoder: logistic regression on the last
    step and its change over the last 2 s (10 steps), same splits, AdamW."""

    def inputs(split):
        x, _ = window(split.features, split.lengths, 20)
        return torch.cat([x[:, -1], x[:, -1] - x[:, -10]], 1), split.targets

    (x, y), test = inputs(task.train), task.split("test", unseal=True)
    aps = {"val": [], "test": []}
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = torch.nn.Linear(x.shape[1], 1)
        optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)
        for _ in range(30):
            for batch in torch.randperm(len(x)).split(32):
                loss = F.binary_cross_entropy_with_logits(model(x[batch]).squeeze(-1), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            for name, split in (("val", task.val), ("test", test)):
                features, targets = inputs(split)
                scores = model(features).squeeze(-1).numpy()
                aps[name].append(average_precision(targets.numpy(), scores))
    return {
        "val_ap": statistics.mean(aps["val"]),
        "val_ap_sd": statistics.stdev(aps["val"]) if seeds > 1 else 0.0,
        "test_ap": statistics.mean(aps["test"]),
        "test_ap_sd": statistics.stdev(aps["test"]) if seeds > 1 else 0.0,
        "test_horizon_map": None,
        "seconds": 0.0,
    }


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
    val = [m["val_ap"] for m in runs]
    test = [m["test_ap"] for m in runs]
    return {
        "val_ap": statistics.mean(val),
        "val_ap_sd": statistics.stdev(val) if len(val) > 1 else 0.0,
        "test_ap": statistics.mean(test),
        "test_ap_sd": statistics.stdev(test) if len(test) > 1 else 0.0,
        "test_horizon_map": statistics.mean(m["test_horizon_map"] or 0 for m in runs),
        "seconds": statistics.mean(m["seconds"] for m in runs),
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
    lines += [
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
    parser.add_argument("--seeds", type=int, default=2)
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
        probe = probe_baseline(tasks(BASE["backbone"]), args.seeds)
        print(f"linear probe: val AP {probe['val_ap']:.3f}, test AP {probe['test_ap']:.3f}")
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
    results["encoders"][f"(no encoder: linear probe on {BASE['backbone']})"] = probe
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    atomic_write_text(Path(args.out).with_suffix(".md"), markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
