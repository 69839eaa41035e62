# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# PyTorch: torch==2.13.0 is a CPU build on this project's machines (a wheel on their disk, for Python
# 3.11).  Anywhere else pip takes it from PyPI, whose Linux x86-64 wheels are CUDA builds (about 5 GB
# with their libraries: right for a GPU machine).  For a CPU-only build from PyTorch's own index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS      ?= dev,ray
# A pip constraints file for every install (CI: .ci/oldest.txt, the oldest releases pyproject allows).
CONSTRAINTS ?=
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)" $(PIN)
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]" $(PIN)
	touch $@

.PHONY: setup demo test lint bench quality gpu-check gpu-train gpu-train-bundle stress
setup: $(VENV)/.installed

demo: setup
	$(BIN)/python -m vidsr.demo out
	@echo "Next: $(BIN)/vidsr --help   (or: . $(BIN)/activate, then vidsr upscale CLIP)"

test: setup
	@$(BIN)/python -c "import sys, av, numpy, onnxruntime, openvino, torch; print('testing on Python', \
	  sys.version.split()[0], '| torch', torch.__version__, '| PyAV', av.__version__, '| numpy', numpy.__version__, \
	  '| onnxruntime', onnxruntime.__version__, '| OpenVINO', openvino.__version__.split('-')[0])"
	$(BIN)/ruff check vidsr tests benchmarks
	$(BIN)/python -m pytest -q

# The signal tests, STRESS_RUNS times, with a CPU hog on every core (as on a busy CI machine);
# the hogs are killed however the loop ends.  A run fails, too, when a process it started outlives
# pytest (tests/leftovers.py).  Each run prints the load average it started under.  The tests run
# at nice STRESS_NICE below the hogs (harsher than a busy CI machine; on a machine already loaded by
# other work a run can take 40 minutes: STRESS_NICE=0 competes with the hogs as equals).
STRESS_RUNS ?= 20
STRESS_NICE ?= 10
stress: setup
	@hogs=""; for i in $$(seq $$(nproc)); do python3 -c 'while True: pass' & hogs="$$hogs $$!"; done; \
	trap 'kill $$hogs 2>/dev/null' EXIT INT TERM; \
	for run in $$(seq $(STRESS_RUNS)); do \
		echo "stress run $$run/$(STRESS_RUNS), load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
		nice -n $(STRESS_NICE) $(BIN)/python tests/leftovers.py $(BIN)/python -m pytest -q -p no:cacheprovider -m signals tests/ \
			|| { echo "stress: run $$run failed after $$((run - 1)) in a row"; exit 1; }; \
	done; \
	echo "stress: $(STRESS_RUNS) runs in a row passed, load average $$(cut -d' ' -f1-3 /proc/loadavg)"

lint: setup
	$(BIN)/ruff check vidsr tests benchmarks
	$(BIN)/ruff format --check vidsr tests benchmarks

# No `setup` prerequisite: GPU hosts are offline (PyAV from a bundled wheel on PYTHONPATH; see README).
# The venv's python when there is one, else $(PYTHON).  Exits 0 saying so on a machine without a GPU.
# Under 8 minutes (a 450 s budget, start-up included); GPU_CHECK_ARGS="--out DIR" for where its six
# files go, "--plan-only" to see the plan first (no GPU needed).
GPU_CHECK_ARGS ?=
HOST_PYTHON = $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	$(HOST_PYTHON) benchmarks/gpu_check.py$(if $(GPU_CHECK_ARGS), $(GPU_CHECK_ARGS))

# Training on a GPU lease (benchmarks/training/README.md): `make gpu-train-bundle` here fills .gpu-train/
# (photos and PyAV, within the 64 MiB a lease carries); on the host `make gpu-train` trains the plan's next
# part for GPU_TRAIN_BUDGET seconds into GPU_TRAIN_OUT; without a GPU it says so and exits 0.
GPU_TRAIN_BUDGET ?= 300
GPU_TRAIN_OUT    ?= /tmp/vidsr-gpu-train
gpu-train-bundle: setup
	$(BIN)/python benchmarks/gpu_train.py --bundle
gpu-train:
	$(HOST_PYTHON) benchmarks/gpu_train.py --out $(GPU_TRAIN_OUT) --budget $(GPU_TRAIN_BUDGET)
