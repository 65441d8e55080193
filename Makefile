# Two commands: `make demo` (set up + run the main job on the embedded corpus) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# EMBEDDER=static curates with the static embedder distilled from MiniLM (a sub-minute curation),
# into its own run folder.
EMBEDDER ?= minilm
DEMO := runs/demo$(if $(filter-out minilm,$(EMBEDDER)),-$(EMBEDDER),)
# Nothing is fetched from a model hub at run time.
export HF_HUB_OFFLINE := 1

.PHONY: install assets demo demo-curate demo-inspect demo-train demo-phonebook examples test test-fast bench data-cards clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned (pyproject) to the CPU build on this machine's disk; constraints.txt pins the rest.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

assets: install
	$(BIN)/splitlm assets

# The main job on the embedded corpus (six domains, ~0.8M GPT-2 tokens): curate into K=6 clusters.
demo-curate: assets
	$(BIN)/curate cluster "$$($(BIN)/splitlm assets --path demo)" --domain-field domain --k 6 \
		--val-fraction 0.1 --embedder $(EMBEDDER) --out $(DEMO)

# Audit the clustering: domains x clusters, prefix-routing recall, cluster similarity. The demo holds
# few validation windows, so routing is measured on all windows.
demo-inspect: demo-curate
	$(BIN)/curate inspect $(DEMO) --split all

# A tiny split run on the demo clusters (~1M non-embedding parameters, D_T = 115k tokens, split at
# 40k; in steps of 4,096 tokens that is 28 = 10 + 6 x 3, so the baseline and the split run share
# D_T exactly): mechanics, not quality. At this budget pretraining-only wins, as the scaling law
# predicts for budgets below D_split. One job at a time on both cores (`--parallel 2` is slower here:
# pretraining is the critical path and runs on one core then). Then routed evaluation: each
# validation window scored by the branch its 32-token prefix routes to (and by likelihood routing),
# against the pretraining-only model.
demo-train: demo-inspect
	$(BIN)/train split $(DEMO) --out $(DEMO)/train --size tiny --total-tokens 115k --split-at 40k \
		--batch-size 2 --eval-every 40k --eval-windows 8 --checkpoint-every 40k
	$(BIN)/train eval $(DEMO)/train --run $(DEMO)

# The payoff (paper Sec. 3.2, Fig. 2a at CPU scale): two clusters of 300 synthetic phone-book facts,
# no overlap; pretrain on both, split after 0%, 75% or 100% of 1,600 steps, score exact recall.
demo-phonebook: install
	$(BIN)/train phonebook --out runs/demo-phonebook --quick

# The demo ends on the phonebook's payoff, cached: the full sweep (3 overlaps x 7 fractions, seed 0)
# that `make examples` writes to examples/phonebook/. Running the quick sweep live instead
# (`make demo-phonebook`) adds about 2 minutes and would take the demo past 10.
demo: demo-train
	@echo
	@echo "Results in $(DEMO)/: cards/index.md (one card per cluster), inspect/report.md (plots and tables),"
	@echo "shards/ (train/val token arrays per cluster), clusters/ (router), manifest.json (every document accounted for),"
	@echo "train/losses.csv (every evaluation of the baseline and the branches), train/routed/ (routed evaluation)."
	@echo
	@echo "Last, where splitting pays: the phonebook experiment (paper Sec. 3.2, Fig. 2a at CPU scale), two clusters"
	@echo "of 300 synthetic facts, 1,600 steps, split after each share of them. Cached: examples/phonebook/phonebook.csv"
	@echo "and .png, written by 'make examples'; 'make demo-phonebook' runs a 3-point sweep of it live (about 2 minutes)."
	@$(BIN)/train phonebook --show examples/phonebook/phonebook.csv

# The evaluation figures in examples/, regenerated from scratch: routed zero-shot QA and domain
# perplexity of the demo's split model, and the full phonebook sweep (Fig. 2a, three overlaps).
examples: demo-train
	$(BIN)/train zeroshot $(DEMO)/train --tasks arc_easy,piqa,sciq,hellaswag --limit 200
	$(BIN)/train eval $(DEMO)/train --run $(DEMO) --by-domain
	$(BIN)/train phonebook --out runs/phonebook --parallel 2
	$(BIN)/train phonebook --out runs/phonebook-sufficient --budget sufficient --parallel 2  # ~24 min
	mkdir -p examples/zeroshot examples/routed examples/phonebook examples/phonebook-sufficient
	cp $(DEMO)/train/zeroshot/results.csv $(DEMO)/train/zeroshot/results.md $(DEMO)/train/zeroshot/zeroshot.png examples/zeroshot/
	cp $(DEMO)/train/routed/routed_eval.csv $(DEMO)/train/routed/routed_eval.png $(DEMO)/train/routed/by_domain.* examples/routed/
	cp runs/phonebook/phonebook.csv runs/phonebook/phonebook.png examples/phonebook/
	cp runs/phonebook-sufficient/phonebook.csv runs/phonebook-sufficient/phonebook.png examples/phonebook-sufficient/

# Regenerate data_cards/ from the demo run (tests/test_data_cards.py checks them against the code).
data-cards: demo-inspect
	$(BIN)/python -c "from splitlm.curate.inspect.stage import write_data_cards; write_data_cards('$(DEMO)', 'data_cards')"

# Tests marked `shared` read ../shared (our 20 Newsgroups copy and reference tables), which a user's
# clone does not have: without it they are left out, and the run says so.
# Two pytest-xdist workers by default (TEST_WORKERS=0: one process); tests/conftest.py groups each
# file, and every Ray test, onto one worker.
SHARED := $(wildcard ../shared/corpora/20news_bydate.jsonl.gz)
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
test: assets
ifeq ($(SHARED),)
	@echo "note: ../shared/corpora is absent, so the tests marked 'shared' (20 Newsgroups, reference tables) are left out"
	$(PYTEST) -m "not shared"
else
	$(PYTEST)
endif

# Everything but the real MiniLM and the real HF Trainer: under 2 minutes on 2 cores.
test-fast: assets
	$(PYTEST) -m "not slow and not shared"

bench: assets
	for b in windows embed kmeans fit train long_document scale embed_actor router; do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf runs .pytest_cache
