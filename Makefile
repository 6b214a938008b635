# make run    the embedded default pipeline, end to end (creates .venv on first use)
# make test   the test suite (what .ci/run calls)
# make bench  benchmarks; results go to results/bench/
# make lint   ruff + snakemake --lint
# make thousand  up to 1,536 experiments of the embedded subspace (profiles/thousand; about 1 h on 2 cores)
# make pull     dvc pull of the released dataset and paper; on failure, names what is damaged
# make release  promote results/dataset to data/release: RELEASE.md, dvc add, dvc repro, dvc push
#               (OVERLAY=profiles/thousand/params.yaml after make thousand)

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: run test bench lint install clean thousand pull release

install: $(STAMP)

# Re-installs when pyproject.toml changes. Everything comes from pinned
# versions in pyproject.toml; see README "Install" for time and size.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; expsearch needs Python 3.11 (set PYTHON=...)"; exit 1; }
	@echo "==> installing into $(VENV) (first time: ~5 min, ~6.6 GB with torch)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	snakemake --workflow-profile profiles/default

thousand: $(STAMP)
	snakemake --workflow-profile profiles/default --profile profiles/thousand

pull: $(STAMP)
	dvc pull || { expsearch check-release; exit 1; }

release: $(STAMP)
	expsearch release --dataset results/dataset $(if $(OVERLAY),--overlay $(OVERLAY))

test: $(STAMP)
	pytest

bench: $(STAMP)
	python benchmarks/bench_space.py --out results/bench/space.json
	python benchmarks/bench_agents.py --out results/bench/agents.json
	python benchmarks/bench_scheduling.py --out results/bench/scheduling.json
	python benchmarks/bench_data.py --out results/bench/data.json
	python benchmarks/bench_analysis.py --out results/bench/analysis.json
	python benchmarks/bench_flops.py --out results/bench/flops.json
	python benchmarks/bench_stacking.py --out results/bench/stacking.json
	python benchmarks/bench_campaign.py --out results/bench/campaign.json
	python benchmarks/bench_embedded_campaign.py --out results/bench/embedded_campaign.json
	python benchmarks/bench_training.py --out results/bench/training.json --sizes embedded
	python benchmarks/bench_training.py --out results/bench/training_paper.json --sizes paper \
		--configs 2 --repeats 2 --epochs paper=5
	snakemake --workflow-profile profiles/default --quiet  # the stores that the quality bench reads
	python benchmarks/bench_quality.py --out results/bench/quality.json
	python benchmarks/bench_cluster.py --out results/bench/cluster.json --configs 160  # root: starts the local SLURM cluster

lint: $(STAMP)
	ruff check .
	ruff format --check .
	snakemake --lint

clean:
	rm -rf results .snakemake
