# Two commands set up everything: `make train` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup train test test-all slurm bench lint figures clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: setup
	$(BIN)/python train.py $(ARGS)

# Two pytest workers (one file each at a time), one thread each: the small models of most tests are bound
# by Python, not arithmetic, so two processes finish sooner than one with two threads.
test: setup slurm
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" -q -n 2 --dist loadfile --durations=15

# The one-node SLURM that tests/cluster starts (apt, as root); without it those tests are skipped and
# pytest's summary says why.
slurm:
	@command -v slurmctld >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; } \
	  || echo "SLURM is not installed (apt-get install slurm-wlm munge as root): the cluster tests will be skipped"

test-all: setup slurm
	$(BIN)/python -m pytest -q

# Speed against bare PyTorch loops (CPU here, the GPU when there is one); prints each ratio and its target.
bench: setup
	$(BIN)/python benchmarks/run.py $(ARGS)

# Regenerates the README gallery: each sweep of docs/gallery.txt, then its plot into docs/figures/.
# `make figures ONLY=minimizer_fig2` runs the lines of one experiment. A line that names its launcher
# (hydra/launcher=batched: stacked groups) keeps it; the others run two jobs at a time (joblib). Lines
# keep no best checkpoint unless they set callbacks.checkpoint (a figure of early-stopped models does).
figures: setup
	grep -v '^#' docs/gallery.txt | grep -E '^$(if $(ONLY),$(ONLY)( |$$),[a-z])' | while read -r experiment overrides; do \
	  case "$$overrides" in *hydra/launcher=*) launcher="";; *) launcher="hydra/launcher=joblib hydra.launcher.n_jobs=2";; esac; \
	  case "$$overrides" in *callbacks.checkpoint*) checkpoint="";; *) checkpoint="callbacks.checkpoint=null";; esac; \
	  $(BIN)/python train.py -m +experiment=$$experiment $$overrides $$checkpoint \
	    $$launcher hydra.sweep.dir=multirun/$$experiment/gallery && \
	  $(BIN)/python -m overparam.results multirun/$$experiment/gallery --out docs/figures || exit 1; \
	done

lint: setup
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/ruff format --check src tests benchmarks train.py

clean:
	rm -rf outputs multirun/*/ .pytest_cache
