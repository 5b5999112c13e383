# kinema: `make demo` and `make test` bootstrap everything from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# Debian packages the tests use: ffprobe cross-checks what our writer produces.
DEB_PACKAGES := ffmpeg
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MEDIA := ../shared/media
DEMO := .demo

.PHONY: demo test lint bench sysdeps venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the local CPU build; anything else pulls gigabytes of CUDA.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,interchange,ml]'
	@rm -f $(VENV)/.installed-*
	@touch $@

sysdeps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check src tests benchmarks

test: venv sysdeps lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

demo: venv
	@mkdir -p $(DEMO)
	@test -f $(MEDIA)/juggle.mp4 || { echo "demo needs $(MEDIA)/juggle.mp4"; exit 1; }
	$(VENV)/bin/kinema probe $(MEDIA)/juggle.mp4
	KINEMA_CACHE_DIR=$(DEMO)/cache $(VENV)/bin/kinema proxy $(MEDIA)/juggle.mp4
	$(VENV)/bin/kinema frame $(MEDIA)/juggle.mp4 --time 4.0 -o $(DEMO)/juggle_4s.png --overwrite
	rm -rf $(DEMO)/juggle.kinema
	$(VENV)/bin/kinema new $(DEMO)/juggle --video $(MEDIA)/juggle.mp4
	$(VENV)/bin/kinema render $(DEMO)/juggle.kinema -o $(DEMO)/juggle.mp4 --range 0:96 --overwrite
	$(VENV)/bin/kinema provenance $(DEMO)/juggle.mp4
	$(VENV)/bin/kinema export otio $(DEMO)/juggle.kinema $(DEMO)/juggle.otio --overwrite
	@echo "demo outputs are in $(DEMO)/"

bench: venv
	$(PY) benchmarks/bench_reader.py
	$(PY) benchmarks/bench_render.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
