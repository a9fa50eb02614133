# Every install goes through constraints.txt so no later step swaps the pinned torch build.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --quiet -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install test lint demo demo-model demo-promptable bench app clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml constraints.txt
	$(PIP_INSTALL) torch torchvision
	$(PIP_INSTALL) -e ".[test]"
	$(PY) -c "import torch, torchvision; assert torch.__version__.split('+')[0] == '2.14.1', torch.__version__"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest -q

CHECKPOINT ?= demo
demo: install
	$(PY) -m tools.demo --checkpoint $(CHECKPOINT) --out outputs/demo

demo-model: install
	$(PY) -m tools.train --config configs/demo_seggpt.yaml --out runs/demo_seggpt --export seggpt/weights/demo_seggpt.safetensors

demo-promptable: install
	$(PY) -m tools.train_promptable --config configs/demo_promptable.yaml --out runs/demo_promptable --export seggpt/weights/demo_promptable.safetensors

bench: install
	$(PY) benchmarks/bench_seggpt.py

app: install
	$(PY) app_gradio.py

clean:
	rm -rf $(VENV) outputs runs
