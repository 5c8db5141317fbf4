# Two commands are the contract (README): `make demo` and `make test`. Both set up .venv first if needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEPS_STAMP := $(VENV)/.deps-installed
INSTALL_STAMP := $(VENV)/.project-installed
DEFAULT_MODEL := models/default
# Everything the package installs is in git, the frozen MiniLM text encoder too (int8 weights, 23 MB; the
# model card's sha256 is checked at load). `actiseg export --text-only --out models/default` rebuilds it.
SOURCES := $(shell find actiseg_ros training launch config models resource -type f \
             -not -path '*/__pycache__/*' 2>/dev/null) setup.py setup.cfg package.xml

# The project is installed (not editable) so that share/ files and the ament index marker are where a ROS
# install puts them; AMENT_PREFIX_PATH makes get_package_share_directory() find them.
export AMENT_PREFIX_PATH := $(abspath $(VENV))$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup test test-unit lint demo bench clean

setup: $(INSTALL_STAMP)

$(DEPS_STAMP): requirements.txt requirements-nodeps.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

$(INSTALL_STAMP): $(DEPS_STAMP) $(SOURCES)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	rm -rf build
	touch $@

test: setup
	$(BIN)/pytest -ra

# The fast tests alone (every test not marked ros, training or slow: about a minute) and the linter alone.
test-unit: setup
	$(BIN)/pytest -ra -m unit

lint: setup
	$(BIN)/ruff check .

demo: setup
	$(BIN)/actiseg demo --json docs/demo/report.json

clean:
	rm -rf $(VENV) build *.egg-info

# Reproduce the shipped default model (CPU: about 1 h 45 min of training on 2 cores, two stages; see
# models/MODEL_CARD.md). The mask threshold is chosen on `val`; the reported numbers are on `val_human`.
RUN := runs/default
DATA := data/synth_default
.PHONY: default-model
default-model: setup
	$(BIN)/actiseg synth --preset default --seed 0 --out $(DATA) --overwrite
	$(BIN)/actiseg train --config default --out $(RUN)_stage1
	$(BIN)/actiseg train --config default --config default_stage2 --set init_from=$(RUN)_stage1/model.pt --out $(RUN)
	$(BIN)/actiseg export --checkpoint $(RUN)/model.pt --out $(DEFAULT_MODEL) --vocabulary synthetic
	$(BIN)/actiseg calibrate --model $(DEFAULT_MODEL) --data $(DATA) --split val --json $(RUN)/calibration.json
	$(BIN)/actiseg export --checkpoint $(RUN)/model.pt --out $(DEFAULT_MODEL) --vocabulary synthetic \
	    --calibration $(RUN)/calibration.json
	$(BIN)/actiseg infer --data $(DATA) --split val_human --out $(RUN)/pred --model $(DEFAULT_MODEL)
	$(BIN)/actiseg eval --pred $(RUN)/pred --data $(DATA) --split val_human \
	    --json $(RUN)/val_human.json --breakdown-json $(RUN)/val_human_breakdown.json
	$(BIN)/actiseg infer --data $(DATA) --split val_human --out $(RUN)/pred_shuffled \
	    --model $(DEFAULT_MODEL) --shuffle-narrations 0
	$(BIN)/actiseg eval --pred $(RUN)/pred_shuffled --data $(DATA) --split val_human \
	    --json $(RUN)/val_human_shuffled.json
	$(BIN)/actiseg export --checkpoint $(RUN)/model.pt --out $(DEFAULT_MODEL) --vocabulary synthetic \
	    --calibration $(RUN)/calibration.json --metrics $(RUN)/val_human.json
	cp $(RUN)/model.pt $(DEFAULT_MODEL)/actiseg_default.pt
	# The int8 text encoder against float32 (prompt cosine, val_human metrics) into the card; exit 1 if it fails.
	$(BIN)/python benchmarks/text_encoder_int8.py --model $(DEFAULT_MODEL) --data $(DATA) \
	    --json $(RUN)/text_encoder_int8.json --card
