# Two commands do all the set-up on a fresh machine:  make demo  and  make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FMNIST_DIR := /usr/share/datasets/fashion-mnist
DEMO_DIR ?= runs/demo

.PHONY: install data browser demo test test-all bench clean docs-check

$(STAMP): setup.py setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Also builds the native bfloat16 ops for this CPU ahead (models/native_ops.py; g++, ~10 s
# once), so no training run or test compiles it.
install: $(STAMP)
	@$(BIN)/python -m dcgan_keras.models.native_ops 2>/dev/null

# Fashion-MNIST IDX files, offline, from Debian's dataset-fashion-mnist package.
data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || [ -f $(HOME)/.keras/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) >/dev/null; \
	  echo "installed dataset-fashion-mnist into $(FMNIST_DIR)"; \
	else \
	  echo "Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist' or let the train binary download it"; \
	fi

# Headless Chromium and its driver for the paint page's browser test, offline, from Debian.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "Chromium and chromedriver found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  if (apt-get install -y -q chromium chromium-driver || (apt-get update -q && apt-get install -y -q chromium chromium-driver)) >/dev/null 2>&1; then \
	    echo "installed chromium and chromium-driver"; \
	  else echo "could not install chromium: the browser test will be skipped"; fi; \
	else \
	  echo "Chromium not found: the browser test will be skipped (sudo apt-get install chromium chromium-driver)"; \
	fi

# A bounded 32x32 Fashion-MNIST run (minutes on 2 CPU cores); re-running resumes and finishes at once.
demo: install data
	@start=$$(date +%s); \
	$(BIN)/python -m dcgan_keras.binaries.train --dataset=fashion_mnist --image_size=32 --channels=1 \
	  --base_width=64 --epochs=1 --workdir=$(DEMO_DIR) && \
	echo "demo took $$(( $$(date +%s) - start )) s; sample grids: $(DEMO_DIR)/samples/"; ls $(DEMO_DIR)/samples

# The lanes are assigned in tests/conftest.py (LANES): the fast lane starts no process and
# opens no browser (under 3 minutes on 2 cores); test-all runs everything (what CI runs).
test: install
	$(BIN)/python -m pytest -q -n auto --durations=15 -m fast tests

test-all: install browser
	$(BIN)/python -m pytest -q -n auto --durations=15 tests

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# Runs the commands of README.md and docs/, in order, on tiny settings (about 10 minutes on 2 cores).
docs-check: install
	$(BIN)/python tools/docs_check.py
