# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision lie on this machine's disk at these versions; pip takes them from there.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint docs man bench clean system

$(STAMP): pyproject.toml
	$(MAKE) system
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages, installed only when running as root (CI and fresh machines are root).
system:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  need=""; \
	  for p in $(shell cat .ci/debian-packages.txt 2>/dev/null); do dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; done; \
	  if [ -n "$$need" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; fi; \
	fi

demo: $(STAMP)
	$(BIN)/python -m mmindex.demo

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# deptry: every module mmindex imports is a declared dependency, every declared one is used ([tool.deptry]).
# lint-imports: the layers only point down ([tool.importlinter] in pyproject.toml, docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check mmindex tests bench
	$(BIN)/deptry mmindex
	$(BIN)/lint-imports

# The layers picture in docs/architecture.md, drawn from the import-linter contract and the code's imports;
# then the HTML documentation, offline, into site/ (open site/index.html): the pages of docs/ and the API
# reference that mkdocstrings renders from the docstrings (mkdocs.yml; strict: a broken link or reference fails).
docs: $(STAMP)
	$(BIN)/python tools/layers.py
	$(BIN)/mkdocs build --strict --site-dir site

# A man page per command into man/ (click-man): `man -l man/mmindex-add.1`, or put man/ on MANPATH.
man: $(STAMP)
	$(BIN)/click-man --target man mmindex

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache site man
