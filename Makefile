# Every install goes through constraints.txt so no later step swaps the pinned torch build.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --quiet -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install photos test lint demo demo-model demo-promptable bench app clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) torch torchvision
	$(PIP_INSTALL) -e ".[all]"
	$(PY) -c "import torch, torchvision; assert torch.__version__.split('+')[0] == '2.14.1', torch.__version__"
	touch $(STAMP)

install: $(STAMP)

# ruff (style), import-linter (the layers in setup.cfg) and deptry (imports vs declared deps).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry .

test: lint
	$(PY) -m pytest -q

CHECKPOINT ?= demo
demo: install
	$(PY) -m tools.demo --checkpoint $(CHECKPOINT) --out outputs/demo

# Debian's opencv-doc ships ~150 sample photos (training photos, and held-out photos and
# scene-text words for evaluation); installed at training time, never committed.
OPENCV_DOC := /usr/share/doc/opencv-doc/examples/data
photos:
	@if [ ! -d $(OPENCV_DOC) ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q opencv-doc >/dev/null || (apt-get update -q && apt-get install -y -q opencv-doc); \
	  else echo "note: Debian's opencv-doc is missing (sudo apt-get install opencv-doc): fewer photos"; fi; \
	fi

# Two stages (about 50 + 40 minutes on 2 CPU cores); stage 2 starts from stage 1's step 1750.
demo-model: install photos
	$(PY) -m tools.train --config configs/demo_seggpt_stage1.yaml --out runs/demo_stage1 --stop-after 1750
	$(PY) -m tools.train --config configs/demo_seggpt_stage2.yaml --out runs/demo_stage2
	$(PY) -m tools.train --config configs/demo_seggpt_stage3.yaml --out runs/demo_stage3
	$(PY) -m tools.train --config configs/demo_seggpt.yaml --out runs/demo_seggpt --export seggpt/weights/demo_seggpt.safetensors
	cp runs/demo_stage3/curves.png seggpt/weights/demo_seggpt.curves.png
	cp runs/demo_stage3/metrics.csv seggpt/weights/demo_seggpt.metrics.csv

demo-promptable: install
	$(PY) -m tools.train_promptable --config configs/demo_promptable.yaml --out runs/demo_promptable_stage1 --export runs/demo_promptable_stage1/model.safetensors
	$(PY) -m tools.train_promptable --config configs/demo_promptable_openset.yaml --out runs/demo_promptable --export painter/promptable/weights/demo_promptable.safetensors

bench: install
	$(PY) benchmarks/bench_seggpt.py

app: install
	$(PY) app_gradio.py

clean:
	rm -rf $(VENV) outputs runs
