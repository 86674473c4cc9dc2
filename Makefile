# Two commands for a new user: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PAI := $(VENV)/bin/pai-kb --index index
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# torch goes in first, pinned: left to sentence-transformers, pip would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,audio]'
	touch $(STAMP)

demo: install
	$(PAI) index
	$(PAI) search "how many grams of coffee and water for a V60" -k 3
	$(PAI) search "what does the IoT VLAN allow?" -k 2 --json
	$(PAI) search "review just before you forget" --type transcript -k 1
	$(PAI) ask "what should I do when my starter has grey liquid on top?" --no-llm

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) index/gen-* index/CURRENT index/onnx index/chroma index/*.sqlite3* index/write.lock index/server.json
