"""The `expsearch` command line.

    expsearch space [--params FILE] [--format json|markdown] [--out FILE]
                                                     summary of C (discrete_cells, ...)
    expsearch validate CONFIG.yaml [--params FILE]   exit 0 if valid, 2 naming the bad key
    expsearch fingerprint CONFIG.yaml [--params FILE]
    expsearch sample --n N --seed S [--params FILE]  N configs as a YAML list
    expsearch check-params [--params FILE]           validate params.yaml only
    expsearch data synth --out DIR [--n N --seed S --variant NAME --duration S --workers W
                              --noise --lighting --speed --occlusion --positive-fraction]
    expsearch data split [--params FILE] [--source ... --root ... --seed ...] --out DIR
    expsearch features decode --clips CSV --manifest JSON --labels CSV --out DIR [--workers N]
                                                     the decoded-frames cache of every clip
    expsearch features extract --backbone NAME --weights random|pretrained [--checkpoint DIR|ID]
                               --clips CSV --manifest JSON --labels CSV --out DIR
                               [--frames CACHE_DIR] [...]
    expsearch features fuse --name NAME --out DIR STORE_DIR STORE_DIR [...]
    expsearch features info STORE_DIR
    expsearch train CONFIG.yaml [--features DIR] [--split MANIFEST] --out DIR [--clips CSV]
                    [--device D] [--seed S] [--quiet]
                                                     out/metrics.json (+ out/trace.txt on failure)
    expsearch crossval CONFIG.yaml [CONFIG.yaml ...] [--features DIR] [--split MANIFEST]
                       [--clips CSV] [--folds K] [--seed S] [--device D] [--out FILE]
                                                     k-fold test AP of the configs, each fold
                                                     keeping the one with the best val AP
    expsearch paper [--analysis DIR] [--out DIR] [--params FILE] [--plots DIR]
                    [--task NAME=DIR ...] [--tasks DIR]
                                                     Tables 1-4 (Markdown and LaTeX), Figures 2-5
                                                     (PDF, PNG), values.tex and values.json from
                                                     the analyses' results and CSV tables
    expsearch overview [--snakefile FILE] [--rulegraph DOT] [--out DIR]
                                                     Figure 1 from `snakemake --rulegraph`:
                                                     out/figures/overview.{pdf,png}
    expsearch import orze DIR --out DATASET_DIR [--campaign NAME]
                                                     Orze results (metrics.json + idea_config.yaml
                                                     per idea) as an experiments.parquet, with
                                                     refused.jsonl naming what could not be mapped
    expsearch release --dataset DIR [--out data/release] [--overlay FILE ...] [--remote NAME]
                      [--task NAME=DIR ...] [--no-repro] [--no-push]
                                                     the dataset as the DVC-tracked release with
                                                     its RELEASE.md; dvc add, dvc repro (paper/),
                                                     dvc push
    expsearch check-release [--repo DIR] [--remote-dir DIR]
                                                     every missing or corrupted object of the
                                                     release and paper, by file (exit 1 if any)
    expsearch propose --policy NAME [--policy NAME ...] [--history FILE] [--proposals FILE]
                      [--n N] [--seed S] [--round R] [--out FILE] [--no-heal] [--fallback]
                                                     the round's candidates with fates, as YAML
    expsearch round propose|shard|collect --campaign NAME --round R [--shard S]
                                                     one job of a campaign round, on the files
                                                     of the campaign layout (as the workflow)
    expsearch analyze baselines|convergence|dynamics|variance|cost|all --data TABLE
                      [--agent-log JSONL] [--out FILE] [--tables DIR] [--value COLUMN]
                      [--groups a,b] [--min-group-size N] [--seed S] [--permutations N]
                      [--bootstrap N] [--pool-campaigns a,b] [--generative-campaign NAME]
                      [--no-subset]
                                                     the analyses' results as JSON (stdout or
                                                     --out); long series as CSVs in --tables

Options not given on the command line come from params.yaml (`--params`).

Exit status: 0 success, 2 bad input (params, config or YAML; for `train` also
an unusable feature store or manifest), 1 a training run that failed (nan, oom,
crash; its metrics.json says which), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .atomic import atomic_write_text
from .params import load_params
from .settings import space_settings
from .space import ConfigError, Space, summary_markdown
from .yamlio import dump_yaml, load_yaml_file

EXIT_BAD_INPUT = 2
DIFFICULTY_KNOBS = ("noise", "lighting", "speed", "occlusion", "positive_fraction")


def _space(args: argparse.Namespace) -> Space:
    return space_settings(load_params(args.params))


def _write_out(text: str, out: str | None) -> None:
    """A command's result: to `--out` (atomically) when given, else to stdout."""
    if out:
        atomic_write_text(out, text)
    else:
        sys.stdout.write(text)


def _load_config(args: argparse.Namespace):
    space = _space(args)
    return space.validate(load_yaml_file(args.config))


def cmd_space(args: argparse.Namespace) -> int:
    summary = _space(args).summary()
    if args.format == "json":
        text = json.dumps(summary, indent=2) + "\n"
    else:
        text = summary_markdown(summary)
    _write_out(text, args.out)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_config(args)
    print(f"{args.config}: valid (fingerprint {config.fingerprint})")
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    print(_load_config(args).fingerprint)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 0:
        raise ValueError(f"--n must be >= 0, got {args.n}")
    configs = _space(args).sample(args.n, seed=args.seed)
    sys.stdout.write(dump_yaml([config.to_dict() for config in configs]))
    return 0


def cmd_check_params(args: argparse.Namespace) -> int:
    load_params(args.params)
    print(f"{args.params}: valid")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from .jobs import synthesize, synthetic_layout
    from .settings import synth_settings

    settings = synth_settings(load_params(args.params)["data"]["synthetic"])
    given = {key: getattr(args, key) for key in ("n", "seed", "variant", "duration_s", "workers")}
    settings = dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})
    knobs = {key: getattr(args, key) for key in DIFFICULTY_KNOBS if getattr(args, key) is not None}
    if knobs:
        settings = dataclasses.replace(
            settings, difficulty=dataclasses.replace(settings.difficulty, **knobs)
        )
    table = synthesize(settings, **synthetic_layout(args.out))
    print(f"{args.out}: {len(table)} clips, {int(table['target'].sum())} positive")
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from .data.sources import nexar_competition
    from .jobs import split_clips
    from .settings import data_settings

    data = data_settings(load_params(args.params)["data"])
    data = dataclasses.replace(
        data,
        source=args.source or data.source,
        root=args.root or data.root,
        videos=args.videos or data.videos,
        labels=args.labels or data.labels,
        fractions={
            name: value if getattr(args, name) is None else getattr(args, name)
            for name, value in data.fractions.items()
        },
        split_seed=data.split_seed if args.seed is None else args.seed,
    )
    root, out = Path(data.root), Path(args.out)
    competition = nexar_competition(root) if data.source == "nexar" else {}
    manifest = split_clips(
        data,
        labels=root / data.labels,
        videos=root / data.videos,
        clips=out / "clips.csv",
        manifest=out / "manifest.json",
        competition_videos=competition.get("videos"),
        competition_labels=competition.get("labels"),
    )
    counts = ", ".join(f"{name} {len(ids)}" for name, ids in manifest.splits.items())
    print(f"{out / 'manifest.json'}: {counts}")
    return 0


def cmd_features_decode(args: argparse.Namespace) -> int:
    from .features.checkpoints import input_sizes
    from .features.frames import frame_plan
    from .jobs import decode_frames

    params = load_params(args.params)
    data, features = params["data"], params["features"]
    weights = args.weights or features["weights"]
    # Pretrained: the checkpoints are found (or the run stops) and size the frames.
    sizes = input_sizes(features["backbones"], weights, features["checkpoints"])
    decode_frames(
        frame_plan(features["backbones"], weights, sizes),
        fps=args.fps or float(data["fps"]),
        window_s=args.window_s or float(data["window_s"]),
        clips=args.clips,
        manifest=args.manifest,
        labels=args.labels,
        out=args.out,
        workers=args.workers,
    )
    return 0


def cmd_features_extract(args: argparse.Namespace) -> int:
    from .jobs import extract_features
    from .settings import data_settings, feature_settings

    params = load_params(args.params)
    data, features = data_settings(params["data"]), feature_settings(params["features"])
    data = dataclasses.replace(
        data, fps=args.fps or data.fps, window_s=args.window_s or data.window_s
    )
    features = dataclasses.replace(
        features,
        weights=args.weights or features.weights,
        batch_size=args.batch_size or features.batch_size,
        device=args.device or features.device,
        seed=features.seed if args.seed is None else args.seed,
        checkpoints=(
            {**features.checkpoints, args.backbone: args.checkpoint}
            if args.checkpoint
            else features.checkpoints
        ),
    )
    extract_features(
        args.backbone,
        data,
        features,
        clips=args.clips,
        manifest=args.manifest,
        labels=args.labels,
        out=args.out,
        frames=args.frames,
    )
    return 0


def cmd_features_fuse(args: argparse.Namespace) -> int:
    from .jobs import fuse_features

    index = fuse_features(args.name, args.stores, args.out)
    print(f"{args.out}: {len(index['clip_ids'])} clips x {index['width']} features")
    return 0


def cmd_features_info(args: argparse.Namespace) -> int:
    from .features.store import open_store

    store = open_store(args.store)
    info = {k: v for k, v in store.index.items() if k not in ("clip_ids", "valid_lengths")}
    info["clips"] = len(store.ids)
    print(json.dumps(info, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .features.store import stores_under
    from .settings import training_settings
    from .training.experiment import TaskCache, run_experiment

    params = load_params(args.params)
    settings = training_settings(params["training"], device=args.device, seed=args.seed)
    manifest = Path(args.split)
    tasks = TaskCache(
        stores_under(args.features or params["features"]["root"]),
        manifest,
        args.clips or manifest.parent / "clips.csv",
        device=settings.torch_device(),
    )

    def log(line: str) -> None:
        print(line, flush=True)

    metrics = run_experiment(
        load_yaml_file(args.config),
        space_settings(params),
        tasks,
        settings,
        args.out,
        log=None if args.quiet else log,
    )
    if metrics["status"] != "ok":
        print(
            f"expsearch train: {metrics['error_class']}: {metrics['error']} "
            f"(trace in {Path(args.out) / metrics['trace']})",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT if metrics["error_class"] in ("config", "data") else 1

    def show(value) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    print(
        f"{metrics['fingerprint']}: val AP {show(metrics['val_ap'])} (epoch {metrics['best_epoch']}"
        f"/{metrics['epochs_run']}), test AP {show(metrics['test_ap'])}, test horizon mAP "
        f"{show(metrics['test_horizon_map'])}, {metrics['seconds']:.1f} s on {metrics['device']}"
        f" -> {Path(args.out) / 'metrics.json'}"
    )
    return 0


def cmd_crossval(args: argparse.Namespace) -> int:
    from functools import cache

    from .features.store import StoreError, stores_under
    from .settings import training_settings
    from .training.crossval import cross_validate, fold_tasks, summary

    params = load_params(args.params)
    space = space_settings(params)
    settings = training_settings(params["training"], device=args.device, seed=args.seed)
    candidates = []
    for path in args.configs:
        try:
            candidates.append(space.validate(load_yaml_file(path)))
        except ConfigError as error:
            print(f"expsearch crossval: error: {path}: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    stores = stores_under(args.features or params["features"]["root"])
    manifest = Path(args.split)

    @cache
    def folds_of(backbone: str):
        if backbone not in stores:
            raise StoreError(
                f"no feature store for backbone {backbone!r}; stores: {sorted(stores)}"
            )
        return fold_tasks(
            stores[backbone], manifest, args.clips or manifest.parent / "clips.csv",
            k=args.folds, seed=settings.seed, device=str(settings.torch_device()),
        )  # fmt: skip

    runs = cross_validate(
        candidates,
        folds_of,
        settings,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    result = summary(runs, args.folds)
    result["configs"] = [dict(c.to_dict(), fingerprint=c.fingerprint) for c in candidates]
    _write_out(json.dumps(result, indent=1) + "\n", args.out)
    print(
        f"{args.folds}-fold test AP {result['test_ap']:.4f} ± {result['test_ap_sd']:.4f} "
        f"(SE {result['test_ap_se']:.4f})",
        file=sys.stderr,
    )
    return 0


def _named_dirs(values: list[str], flag: str) -> dict[str, str]:
    """NAME=DIR arguments as {name: dir}; a value without `=` is an error naming it."""
    bad = [value for value in values if "=" not in value]
    if bad:
        raise FileNotFoundError(f"{flag} {bad[0]}: expected NAME=DIR")
    return dict(value.split("=", 1) for value in values)


def cmd_paper(args: argparse.Namespace) -> int:
    from .paper.figures import draw_figures, figure_files, save, sources_in
    from .paper.plots import plot_tables, write_plots
    from .paper.write import (
        cross_task_files,
        paper_files,
        read_cross_task,
        read_results,
        result_files,
        write_cross_task,
        write_paper,
    )
    from .tasks import primary_task, task_params

    params = load_params(args.params)
    min_runs = args.min_runs or params["paper"]["heatmap_min_runs"]
    try:  # every input read before anything is written: no half-written paper
        results = read_results(result_files(args.analysis))
        figures = draw_figures(sources_in(args.analysis), min_runs=min_runs)
        plots = plot_tables(sources_in(args.analysis)) if args.plots else {}
        tasks = _named_dirs(args.task, "--task")
        if args.tasks:  # the primary task's analyses and each declared task's under --tasks
            declared = {name: Path(args.tasks) / name for name in task_params(params)}
            tasks = {primary_task(params): args.analysis, **declared, **tasks}
        cross = read_cross_task(tasks) if tasks else None
    except FileNotFoundError as error:
        print(f"expsearch paper: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    written = write_paper(results, space_settings(params), paper_files(args.out))
    written += save(figures, figure_files(args.out))
    if cross is not None:
        written += write_cross_task(cross, cross_task_files(args.out))
    if args.plots:
        written += write_plots(plots, args.plots)
    print(f"{len(written)} files -> {args.out}" + (f" and {args.plots}" if args.plots else ""))
    return 0


def cmd_overview(args: argparse.Namespace) -> int:
    from .paper.figures import save
    from .paper.overview import draw_overview, overview_files, parse_rulegraph, rulegraph

    if args.rulegraph:
        if args.rulegraph != "-" and not Path(args.rulegraph).is_file():
            print(f"expsearch overview: error: {args.rulegraph}: no such file", file=sys.stderr)
            return EXIT_BAD_INPUT
        dot = sys.stdin.read() if args.rulegraph == "-" else Path(args.rulegraph).read_text()
    else:
        try:
            dot = rulegraph(args.snakefile, tuple(args.configfile))
        except RuntimeError as error:
            print(f"expsearch overview: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    written = save({"overview": draw_overview(parse_rulegraph(dot))}, overview_files(args.out))
    print(f"{len(written)} files -> {args.out}")
    return 0


def cmd_import_orze(args: argparse.Namespace) -> int:
    from .importers.orze import import_orze, write_import

    try:
        result = import_orze(args.dir, campaign=args.campaign)
    except FileNotFoundError as error:
        print(f"expsearch import orze: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = write_import(result, args.out)
    print(
        f"{summary['imported']} of {summary['records']} records imported -> "
        f"{Path(args.out) / 'experiments.parquet'}; {summary['refused']} refused, reasons in "
        f"{Path(args.out) / 'refused.jsonl'} ({summary['refusal_reasons']})"
    )
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from .release import ReleaseError, build_release, publish, release_markdown
    from .tasks import task_params

    params = load_params(args.params, *args.overlay)
    try:
        tasks = _named_dirs(args.task, "--task")
    except FileNotFoundError as error:
        print(f"expsearch release: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # A declared task's dataset is where the workflow writes it, beside --dataset.
    dataset = Path(args.dataset)
    for name in task_params(params):
        tasks.setdefault(name, str(dataset.parent / "tasks" / name / dataset.name))
    try:
        facts = build_release(args.dataset, args.out, params, tasks)
        print(release_markdown(facts))
        if not args.no_dvc:
            publish(args.out, remote=args.remote, repro=not args.no_repro, push=not args.no_push,
                    log=lambda line: print(line, file=sys.stderr))  # fmt: skip
    except ReleaseError as error:
        print(f"expsearch release: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def cmd_check_release(args: argparse.Namespace) -> int:
    from .release_check import check_release

    problems = check_release(args.repo, Path(args.remote_dir) if args.remote_dir else None)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "every tracked object is intact",
          file=sys.stderr)  # fmt: skip
    return 1 if problems else 0


def cmd_propose(args: argparse.Namespace) -> int:
    from .agents.history import History
    from .agents.plan import plan_round
    from .agents.registry import build_agents, build_fallback, build_healer
    from .settings import agent_settings

    params = load_params(args.params)
    space = space_settings(params)
    agents_settings = agent_settings(params["agents"])
    history = (
        History.load(args.history, space, proposals=args.proposals) if args.history else History()
    )
    settings = agents_settings.plan
    if args.n is not None:
        settings = dataclasses.replace(settings, ideas_per_agent=args.n)
    agents = build_agents(args.policy, agents_settings, space, round_index=args.round)
    plan = plan_round(
        agents,
        history,
        space,
        round_index=args.round,
        seed=args.seed,
        settings=settings,
        healer=None if args.no_heal else build_healer(agents_settings, space),
        fallback=build_fallback(agents_settings, space) if args.fallback else None,
    )
    text = dump_yaml(plan.rows)
    _write_out(text, args.out)
    for entry in plan.agent_log:
        said = [f"{entry['agent']} ({entry['policy']})"]
        if entry["note"]:
            said.append(entry["note"])
        if entry["input_tokens"] or entry["output_tokens"]:
            said.append(
                f"{entry['input_tokens']} in / {entry['output_tokens']} out tokens, "
                f"${entry['cost_usd']:.4f}"
            )
        if entry["error"]:
            said.append(f"FAILED: {entry['error']}")
        print("expsearch propose: " + "; ".join(said), file=sys.stderr)
    kept = len(plan.queue)
    print(f"expsearch propose: {kept} kept of {len(plan.rows)} candidates", file=sys.stderr)
    # The named agents all failing is a failure, even when the fallback filled the round.
    return 1 if all(report.error for report in plan.reports[: len(agents)]) else 0


def _campaign(args: argparse.Namespace):
    from .campaign.layout import CampaignLayout
    from .settings import campaign_settings

    params = load_params(args.params)
    return (
        params,
        campaign_settings(params, args.campaign),
        CampaignLayout(params["campaign"]["root"]),
    )


def _stores(params) -> list[str]:
    from .features.store import store_files

    features = params["features"]
    names = [*features["backbones"], *features["fusions"]]
    return [path for name in names for path in store_files(features["root"], name)]


def cmd_round(args: argparse.Namespace) -> int:
    """One job of a campaign round, on the files the workflow's rule would use."""
    from .campaign.describe import describe_plan
    from .campaign.steps import collect_round, propose_round, run_shard

    params, settings, layout = _campaign(args)
    c, r = settings.name, args.round
    if args.step == "propose":
        ledger = layout.ledger(c, r, settings.lag)
        plan = propose_round(settings, r, ledger["plans"], ledger["experiments"], layout.plan(c, r))
        print(describe_plan(plan))
    elif args.step == "shard":
        run_shard(
            settings,
            plan=layout.plan(c, r),
            shard=args.shard,
            stores=_stores(params),
            manifest=args.split,
            clips=args.clips or Path(args.split).parent / "clips.csv",
            runs=layout.runs(c, r),
            out=layout.shard(c, r, args.shard),
        )
    else:
        rows = collect_round(
            settings,
            plan=layout.plan(c, r),
            shards=layout.shards(c, r, settings.shards),
            out=layout.experiments(c, r),
        )
        print(f"{layout.experiments(c, r)}: {len(rows)} experiments")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """Analyses of an experiment table, one family or all, as JSON."""
    from .analysis.run import FAMILIES, TABLES, run_family
    from .settings import analysis_settings

    params = load_params(args.params)
    settings = analysis_settings(params["analysis"], **_analysis_overrides(args))
    families = FAMILIES if args.family == "all" else (args.family,)
    results = {}
    for family in families:
        tables = None
        if args.tables:
            Path(args.tables).mkdir(parents=True, exist_ok=True)
            tables = {name: Path(args.tables) / f"{family}_{name}.csv" for name in TABLES[family]}
        results[family] = run_family(
            family,
            data=args.data,
            settings=settings,
            space=space_settings(params),
            agent_log=args.agent_log,
            tables=tables,
        )
    result = results[args.family] if args.family != "all" else results
    text = json.dumps(result, indent=1, allow_nan=False) + "\n"
    _write_out(text, args.out)
    return 0


def _analysis_overrides(args: argparse.Namespace) -> dict:
    def names(text: str | None) -> tuple[str, ...] | None:
        return tuple(part.strip() for part in text.split(",") if part.strip()) if text else None

    overrides = {
        "metric": args.value,
        "groups": names(args.groups),
        "min_group_size": args.min_group_size,
        "seed": args.seed,
        "bootstrap": args.bootstrap,
        "permutations": args.permutations,
        "pool_permutations": args.permutations,
        "pool_campaigns": names(args.pool_campaigns),
        "generative_campaign": args.generative_campaign,
    }
    chosen = {key: value for key, value in overrides.items() if value is not None}
    if args.no_subset:  # e.g. imported rows, which have no rounds
        chosen["subset"] = None
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expsearch", description="LLM-guided combinatorial experiment search."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "--params", default="params.yaml", help="params file (default: %(default)s)"
        )
        cmd.set_defaults(func=func)
        return cmd

    space = add("space", cmd_space, "print a summary of the configuration space")
    space.add_argument("--format", choices=["json", "markdown"], default="json")
    space.add_argument("--out", help="write to this file (atomically) instead of stdout")
    add("validate", cmd_validate, "check that a config YAML is a point of the space").add_argument(
        "config"
    )
    add("fingerprint", cmd_fingerprint, "print the stable fingerprint of a config").add_argument(
        "config"
    )
    sample = add("sample", cmd_sample, "print N uniformly sampled configs as YAML")
    sample.add_argument("--n", type=int, required=True, help="how many configs")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add("check-params", cmd_check_params, "validate params.yaml against its schema")

    data = sub.add_parser("data", help="synthetic clips and split manifests").add_subparsers(
        dest="data_command", required=True
    )
    synth = data.add_parser("synth", help="generate synthetic dashcam clips (Nexar layout)")
    synth.add_argument("--params", default="params.yaml", help="defaults: data.synthetic")
    synth.add_argument("--out", required=True, help="output folder (videos/ and train.csv)")
    synth.add_argument("--n", type=int, help="number of clips")
    synth.add_argument("--seed", type=int)
    synth.add_argument("--variant", help="camera variant: default | fleet")
    synth.add_argument("--duration", dest="duration_s", type=float, help="seconds per clip")
    synth.add_argument("--workers", type=int, help="parallel rendering processes")
    for knob in DIFFICULTY_KNOBS:
        synth.add_argument(f"--{knob.replace('_', '-')}", dest=knob, type=float)
    synth.set_defaults(func=cmd_data_synth)
    split = data.add_parser("split", help="stratified split by video id, with a hashed manifest")
    split.add_argument("--params", default="params.yaml")
    split.add_argument("--source", choices=["synthetic", "nexar", "folder"])
    split.add_argument("--root", help="folder of the labels CSV and the videos")
    split.add_argument("--videos", help="video folder inside root")
    split.add_argument("--labels", help="labels CSV inside root")
    split.add_argument("--seed", type=int)
    for name in ("train", "val", "test"):
        split.add_argument(f"--{name}", type=float, help=f"fraction of clips for {name}")
    split.add_argument("--out", required=True, help="folder for clips.csv and manifest.json")
    split.set_defaults(func=cmd_data_split)

    features = sub.add_parser("features", help="backbone feature stores").add_subparsers(
        dest="features_command", required=True
    )
    extract = features.add_parser("extract", help="extract one backbone's feature store")
    extract.add_argument("--params", default="params.yaml")
    extract.add_argument("--backbone", required=True)
    extract.add_argument("--weights", choices=["random", "pretrained"])
    extract.add_argument(
        "--checkpoint",
        help="pretrained: a checkpoint folder or Hugging Face id (default: features.checkpoints)",
    )
    extract.add_argument("--clips", required=True, help="clips.csv from `data split`")
    extract.add_argument("--manifest", required=True, help="manifest.json from `data split`")
    extract.add_argument(
        "--labels", required=True, help="the labels CSV the manifest was made from"
    )
    extract.add_argument("--out", required=True, help="store folder")
    extract.add_argument("--fps", type=float)
    extract.add_argument("--window-s", type=float)
    extract.add_argument("--batch-size", type=int)
    extract.add_argument("--device", help="auto | cpu | cuda[:N]")
    extract.add_argument("--seed", type=int)
    extract.add_argument(
        "--frames", help="decoded-frames cache from `features decode` (default: the videos)"
    )
    extract.set_defaults(func=cmd_features_extract)
    decode = features.add_parser(
        "decode", help="decode every clip's window once, for all backbones of params"
    )
    decode.add_argument("--params", default="params.yaml")
    decode.add_argument("--weights", choices=["random", "pretrained"])
    decode.add_argument("--clips", required=True, help="clips.csv from `data split`")
    decode.add_argument("--manifest", required=True, help="manifest.json from `data split`")
    decode.add_argument("--labels", required=True, help="the labels CSV the manifest was made from")
    decode.add_argument("--out", required=True, help="cache folder")
    decode.add_argument("--fps", type=float)
    decode.add_argument("--window-s", type=float)
    decode.add_argument("--workers", type=int, default=2, help="threads decoding clips")
    decode.set_defaults(func=cmd_features_decode)
    fuse = features.add_parser("fuse", help="concatenate stores per step")
    fuse.add_argument("--name", required=True)
    fuse.add_argument("--out", required=True)
    fuse.add_argument("stores", nargs="+")
    fuse.set_defaults(func=cmd_features_fuse)
    info = features.add_parser("info", help="print a store's index (without the id lists)")
    info.add_argument("store")
    info.set_defaults(func=cmd_features_info)

    train = add("train", cmd_train, "train one config on cached features; write metrics.json")
    train.add_argument("config", help="config YAML (a point of the space)")
    train.add_argument("--features", help="root of the feature stores (default: params)")
    train.add_argument("--split", default="results/split/manifest.json", help="split manifest")
    train.add_argument("--clips", help="clip table (default: clips.csv beside the manifest)")
    train.add_argument("--out", required=True, help="folder for metrics.json")
    train.add_argument("--device", help="auto | cpu | cuda[:N] (default: params)")
    train.add_argument("--seed", type=int, help="training seed (default: params)")
    train.add_argument("--quiet", action="store_true", help="no line per epoch")

    crossval = add(
        "crossval", cmd_crossval,
        "k-fold cross-validated test AP of final configs (per fold, the best by val AP)",
    )  # fmt: skip
    crossval.add_argument("configs", nargs="+", help="config YAMLs: the candidates")
    crossval.add_argument("--features", help="root of the feature stores (default: params)")
    crossval.add_argument("--split", default="results/split/manifest.json", help="its clips")
    crossval.add_argument("--clips", help="clip table (default: clips.csv beside the manifest)")
    crossval.add_argument("--folds", type=int, default=10, help="k (default: %(default)s)")
    crossval.add_argument("--seed", type=int, help="fold and training seed (default: params)")
    crossval.add_argument("--device", help="auto | cpu | cuda[:N] (default: params)")
    crossval.add_argument("--out", help="write the JSON here (atomically) instead of stdout")

    paper = add("paper", cmd_paper, "the paper's tables and values.tex from the analyses")
    paper.add_argument("--analysis", default="results/analysis", help="the analyses' JSON")
    paper.add_argument("--out", default="paper", help="folder for tables/, figures/, values.*")
    paper.add_argument(
        "--min-runs", type=int, help="heatmap cells need this many runs (default: params)"
    )
    paper.add_argument("--plots", help="also write the curves as CSV here, one per series (DVC)")
    paper.add_argument(
        "--task", action="append", default=[], metavar="NAME=DIR",
        help="a task's analyses (variance.json, variance_groups.csv) for the cross-task table; "
        "repeat per task",
    )  # fmt: skip
    paper.add_argument(
        "--tasks", metavar="DIR",
        help="the cross-task table of the primary task (--analysis) and every task params "
        "declares, each one's analyses in DIR/<name>/",
    )  # fmt: skip

    overview = add("overview", cmd_overview, "Figure 1, the workflow's rule graph, as PDF and PNG")
    overview.add_argument("--snakefile", default="Snakefile", help="workflow (%(default)s)")
    overview.add_argument("--configfile", action="append", default=[], help="config overlays")
    overview.add_argument("--rulegraph", help="`snakemake --rulegraph` output instead ('-': stdin)")
    overview.add_argument("--out", default="paper", help="folder for figures/ (%(default)s)")

    importers = sub.add_parser("import", help="other systems' experiment records").add_subparsers(
        dest="source", required=True
    )
    orze = importers.add_parser("orze", help="Orze results folders as an experiment table")
    orze.add_argument("dir", help="folder of idea folders (metrics.json + idea_config.yaml)")
    orze.add_argument("--out", required=True, help="dataset folder to write")
    orze.add_argument("--campaign", default="orze", help="campaign name of the rows")
    orze.set_defaults(func=cmd_import_orze)

    release = add(
        "release", cmd_release,
        "the dataset as the DVC-tracked release: RELEASE.md, dvc add, dvc repro, dvc push",
    )  # fmt: skip
    release.add_argument("--dataset", required=True, help="a dataset folder (results/dataset)")
    release.add_argument("--out", default="data/release", help="release folder (%(default)s)")
    release.add_argument(
        "--overlay", action="append", default=[],
        help="params merged over --params, as the campaign ran (e.g. profiles/thousand/params.yaml)",
    )  # fmt: skip
    release.add_argument(
        "--task", action="append", default=[], metavar="NAME=DIR",
        help="a declared task's dataset (default: tasks/<name>/<dataset> beside --dataset, "
        "where the workflow writes it)",
    )  # fmt: skip
    release.add_argument("--remote", help="DVC remote to push to (default: the default remote)")
    release.add_argument("--no-repro", action="store_true", help="do not regenerate paper/")
    release.add_argument("--no-push", action="store_true", help="do not push to the remote")
    release.add_argument("--no-dvc", action="store_true", help="only write the folder")

    check_release = add(
        "check-release", cmd_check_release,
        "name every missing or corrupted object of the DVC-tracked release and paper",
    )  # fmt: skip
    check_release.add_argument("--repo", default=".", help="repository root (%(default)s)")
    check_release.add_argument("--remote-dir", help="folder remote (default: DVC's default)")

    propose = add("propose", cmd_propose, "propose one round of configs and print their fates")
    propose.add_argument(
        "--policy", action="append", required=True,
        help="random | tpe | rules | an agent under agents.llm (repeat for several agents)",
    )  # fmt: skip
    propose.add_argument("--history", help="experiments table (.jsonl, .json, .yaml, .parquet)")
    propose.add_argument("--proposals", help="earlier proposals table (shows last rejections)")
    propose.add_argument("--n", type=int, help="configs per agent (default: params)")
    propose.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    propose.add_argument("--round", type=int, default=0, help="round number (default: 0)")
    propose.add_argument("--out", help="write the YAML here (atomically) instead of stdout")
    propose.add_argument(
        "--no-heal", action="store_true", help="do not re-queue healed failures (default: heal)"
    )
    propose.add_argument(
        "--fallback", action="store_true",
        help="fill budget the agents leave unused from agents.fallback, as a campaign round does",
    )  # fmt: skip
    rounds = add("round", cmd_round, "run one job of a campaign round, as the workflow would")
    rounds.add_argument("step", choices=["propose", "shard", "collect"])
    rounds.add_argument("--campaign", required=True, help="a campaign under campaign.campaigns")
    rounds.add_argument("--round", type=int, required=True, help="round number (from 0)")
    rounds.add_argument("--shard", type=int, default=0, help="shard number (step shard)")
    rounds.add_argument("--split", default="results/split/manifest.json", help="split manifest")
    rounds.add_argument("--clips", help="clip table (default: clips.csv beside the manifest)")
    analyze = add("analyze", cmd_analyze, "the paper's analyses of an experiment table, as JSON")
    analyze.add_argument(
        "family", choices=["baselines", "convergence", "dynamics", "variance", "cost", "all"]
    )
    analyze.add_argument(
        "--data", required=True,
        help="experiment table: experiments.parquet of a dataset, or .csv/.jsonl/.json rows",
    )  # fmt: skip
    analyze.add_argument("--agent-log", help="the dataset's agent_log.jsonl (cost: LLM calls)")
    analyze.add_argument("--out", help="write the JSON here (atomically) instead of stdout")
    analyze.add_argument("--tables", help="folder for the long series as CSV (else in the JSON)")
    analyze.add_argument("--value", "--metric", help="the AP column (default: params)")
    analyze.add_argument("--groups", help="ANOVA groups, comma-separated (default: params)")
    analyze.add_argument("--min-group-size", type=int, help="smallest group kept (default: params)")
    analyze.add_argument("--seed", type=int, help="seed (default: params)")
    analyze.add_argument("--permutations", type=int, help="random orders (default: params)")
    analyze.add_argument("--bootstrap", type=int, help="bootstrap resamples (default: params)")
    analyze.add_argument("--pool-campaigns", help="campaigns forming the pool, comma-separated")
    analyze.add_argument("--generative-campaign", help="the campaign that drew from the space")
    analyze.add_argument(
        "--no-subset", action="store_true",
        help="analyse every row: no analysis.subset (rows without rounds, e.g. imported ones)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # ParamsError, ConfigError and YamlError are ValueErrors
        where = f"{args.config}: " if isinstance(exc, ConfigError) else ""
        print(f"expsearch {args.command}: error: {where}{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
