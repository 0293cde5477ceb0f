# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := ffmpeg nginx-light chromium chromium-driver redis-server
# Only the benchmarks need these (`make bench`), not `make test`.
BENCH_APT_PACKAGES := wrk
export VODEDGE_TEST_CACHE ?= $(CURDIR)/.cache/test-media

.PHONY: run test lint typecheck bench system-deps bench-deps build-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# setup.py compiles the MP4 clip planner with mypyc, and the warm one (clipper.pyx) with
# Cython, where gcc and Python's headers are present (pure Python otherwise): an edit of
# what it compiles, or of what that imports, rebuilds (an extension older than its
# source would be imported ahead of it).
NATIVE_SOURCES := setup.py $(wildcard src/vodedge/media/*.py src/vodedge/media/mp4/*.py \
  src/vodedge/media/mp4/*.pyx src/vodedge/media/mp4/*.pyi)
# `make test` installs these first so that it tests the compiled build; `make run` does
# not need them.
BUILD_APT_PACKAGES := gcc python3-dev

$(VENV)/.installed: $(BIN)/python pyproject.toml $(NATIVE_SOURCES)
	$(BIN)/pip install -q -e .
	touch $@

# Installs the package too (one build): `make run` afterwards finds it up to date.
$(VENV)/.installed-test: $(BIN)/python pyproject.toml $(NATIVE_SOURCES) | build-deps
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

# The benchmarks' Python tools (py-spy, pyinstrument, and the floors httptools, granian).
$(VENV)/.installed-bench: $(VENV)/.installed-test pyproject.toml
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

# Debian packages the tests drive for real (ffmpeg is the oracle), and the compiler.
system-deps bench-deps: PACKAGES = $(APT_PACKAGES)
bench-deps: PACKAGES = $(APT_PACKAGES) $(BENCH_APT_PACKAGES)
build-deps: PACKAGES = $(BUILD_APT_PACKAGES)
system-deps bench-deps build-deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(VENV)/.installed
	@echo "Try (audio only; a 4-second audio clip of a file whose moov is at the tail; FLV audio; metrics):"
	@echo "  curl -sI 'http://127.0.0.1:8080/talk.mp4?ali_audio_only=1'                                # 68,970 bytes of 369,828"
	@echo "  curl -s -o clip.m4a 'http://127.0.0.1:8080/tail-moov.mp4?ali_audio_only=1&start=2&end=6'  # 34,565 bytes of 255,738"
	@echo "  curl -s -o talk-audio.flv 'http://127.0.0.1:8080/talk.flv?ali_audio_only=1'               # 70,715 bytes of 372,017"
	@echo "  curl -s http://127.0.0.1:9090/metrics                                                     # Prometheus text"
	@echo "Listen in a browser (the video, or with Listen only its audio from the same position):"
	@echo "  http://127.0.0.1:8080/_vodedge/listen?src=/talk.mp4"
	@echo "  http://127.0.0.1:8080/_vodedge/listen?src=/tail-moov.mp4"
	@echo "  http://127.0.0.1:8080/_vodedge/listen?src=/talk.flv"
	$(BIN)/vodedge serve --origin samples --listen 127.0.0.1:8080 --admin 127.0.0.1:9090 \
	  --cache-dir var/cache

test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: $(VENV)/.installed-bench bench-deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .cache var build src/*.so src/vodedge/media/mp4/*.so src/vodedge/_native.json
