# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv if it is missing and installs what it needs first.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1

# The demo's canary: cus_acme's devices whose bucket is under weight x 100 (of 10,000).
DEMO_CANARY_WEIGHT := 50
DEMO_KEYS := .modelyard/keys
DEMO_DEVICES = --policy demo-policy --devices 24 --start-server --base-url http://127.0.0.1:0 \
	--cache .modelyard/devices \
	--api-key cus_acme=@$(DEMO_KEYS)/cus_acme.key --api-key cus_beta=@$(DEMO_KEYS)/cus_beta.key

.PHONY: demo predictor-demo selection-demo test install lint typecheck importlint pytest bench docs clean-demo

demo: $(STAMP)
	$(BIN)/modelyard db up
	$(BIN)/modelyard db migrate
	$(BIN)/modelyard demo-data --out data/demo
	$(BIN)/modelyard dataset create --policy demo-policy --name demo \
		--classes car,person,sign --exist-ok
	$(BIN)/modelyard ingest coco data/demo/annotations.json --dataset demo
	$(BIN)/modelyard dataset inspect demo --rows 2
	$(BIN)/modelyard dataset split demo --ratios 0.7,0.15,0.15 --seed 0 \
		--stratify class,stream,road_type,scenario
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@echo "exported; each artifact checked against PyTorch on the test split:"
	$(BIN)/modelyard export show models/export
	$(BIN)/modelyard gate show
	$(BIN)/modelyard model show
	$(BIN)/modelyard keys signing init --exist-ok
	$(BIN)/modelyard promote demo-policy-detect candidate --to canary --actor demo \
		--weight $(DEMO_CANARY_WEIGHT) --targeting '{"customer_ids": ["cus_acme"]}'
	$(BIN)/modelyard lineage demo-policy/canary --rows 1
	$(BIN)/modelyard keys create --customer cus_acme --save $(DEMO_KEYS)/cus_acme.key --exist-ok
	$(BIN)/modelyard keys create --customer cus_beta --save $(DEMO_KEYS)/cus_beta.key --exist-ok
	@echo "simulated devices of two customers fetch, verify and report on their bundle (the hour before last):"
	$(BIN)/modelyard device simulate $(DEMO_DEVICES) --hours-ago 1 --by-outcome
	@echo "the same devices report the last hour, with darker images:"
	$(BIN)/modelyard device simulate $(DEMO_DEVICES) --shift brightness=-3 --summary
	@echo "drift, hour by hour, against the reference captured at promotion:"
	$(BIN)/modelyard drift run --hours-ago 1
	$(BIN)/modelyard drift run
	$(BIN)/modelyard drift show demo-policy/canary --last 2
	@echo "the held canary goes no further (this refusal is expected):"
	-$(BIN)/modelyard rollout demo-policy --tier production --weight 100
	@echo "the canary scores the test split through the SDK's Scorer (its ONNX model, calibration, threshold):"
	$(BIN)/modelyard score --bundle demo-policy/canary --dataset demo --split test
	@echo "a review cycle: the scored outputs against the labels, and the images to look at again:"
	$(BIN)/modelyard review cycle --bundle demo-policy/canary --top 10 --near 5 --drifted 5
	@echo
	@echo "done: the demo model is the active canary bundle of demo-policy (cus_acme's devices,"
	@echo "  $(DEMO_CANARY_WEIGHT)% of them by bucket); the others get no bundle until a production one exists."
	@echo "  the device API:                     $(BIN)/modelyard serve  (http://127.0.0.1:8000/docs)"
	@echo "  the bundle row and its audit log:  $(BIN)/modelyard bundles list; $(BIN)/modelyard bundles history"
	@echo "  from the bundle to the sample rows: $(BIN)/modelyard lineage demo-policy/canary"
	@echo "  its files in the bucket:            .modelyard/storage/verify-ai-models/demo-policy/"
	@echo "  the model card: reports/model_card.md; plots: dvc plots show (reports/evaluate/)"
	@echo "  runs and the registered model with its canary alias, in the MLflow UI: $(BIN)/modelyard ui  (http://127.0.0.1:5000)"
	@echo "  its drift, and why it is held:      $(BIN)/modelyard drift show demo-policy/canary"
	@echo "  the review cycle's report and set:  reports/review_cycle_demo-policy_v1.md, reports/review_cycle_demo-policy_v1/review.csv"
	@echo "  next: once a later hour is not an alarm (device simulate, then drift run), the hold"
	@echo "  lifts: $(BIN)/modelyard rollout demo-policy --tier production --weight 100"

# The quality predictor on a generated corpus of three codecs: one learnable (PASS), one noisy
# (FAIL), one with four sources (insufficient-sources). Not every codec passes, so the run
# exits 2: that is what this corpus is built to show.
predictor-demo: $(STAMP)
	$(BIN)/modelyard db up
	$(BIN)/modelyard predictor corpus --out data/predictor/corpus.jsonl
	CORPUS=data/predictor/corpus.jsonl MODELYARD=$(BIN)/modelyard \
		bash scripts/run_predictor_training.sh; status=$$?; \
		echo "exit status $$status (2: not every codec passed, as this corpus is built to show)"; \
		test $$status -eq 2
	@echo "cards: models/predictor/predictor_<codec>_card.md; report: reports/predictor/report.json"

# Photo selection on a generated decisions database: inspection -> embeddings -> ranker ->
# crop proposer -> metadata, daily summary, registered versions.
SELECTION = data/selection
selection-demo: $(STAMP)
	$(BIN)/modelyard db up
	$(BIN)/modelyard db migrate
	rm -rf $(SELECTION)
	$(BIN)/modelyard selection demo-data --out $(SELECTION)
	$(BIN)/modelyard selection inspect $(SELECTION)/decisions.db
	$(BIN)/modelyard dataset create --policy photo-lab --name bursts --classes keep --exist-ok
	$(BIN)/modelyard ingest sqlite-decisions $(SELECTION)/decisions.db --dataset photo-lab/bursts \
		--images-dir $(SELECTION)/images
	$(BIN)/modelyard dataset split photo-lab/bursts --ratios 0.6,0.2,0.2 --seed 0
	$(BIN)/modelyard embed --dataset photo-lab/bursts
	$(BIN)/modelyard ranker train --dataset photo-lab/bursts
	$(BIN)/modelyard crop train --dataset photo-lab/bursts
	$(BIN)/modelyard selection summary
	@echo "the ranker through the bridge to photo-lab's canary, and three devices fetching it (ONNX only: the android and ios devices are told so):"
	$(BIN)/modelyard keys signing init --exist-ok
	$(BIN)/modelyard promote selection-ranker candidate --to canary --weight 100 --actor demo
	$(BIN)/modelyard bundles show photo-lab/canary
	$(BIN)/modelyard keys create --customer cus_lab --save $(DEMO_KEYS)/cus_lab.key --exist-ok
	$(BIN)/modelyard device simulate --policy photo-lab --devices 3 --start-server \
		--base-url http://127.0.0.1:0 --cache .modelyard/devices \
		--api-key cus_lab=@$(DEMO_KEYS)/cus_lab.key

test: $(STAMP) lint typecheck importlint pytest

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing modelyard and its dependencies into $(VENV) (pip's output: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --quiet --upgrade pip && \
	   $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'; } \
	   > $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; \
	   echo "install failed: the whole log is $(VENV)/install.log"; exit 1; }
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests pipelines bench
	$(BIN)/ruff format --check src tests pipelines bench

typecheck: $(STAMP)
	$(BIN)/mypy

importlint: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site
	@echo "the documentation is in site/index.html"

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/dataset_scale.py
	$(BIN)/python bench/tracking_overhead.py
	$(BIN)/python bench/export_latency.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/drift.py

clean-demo:
	rm -rf data reports
