# ser-book: two commands on a fresh machine.
#   make book   set up .venv, execute every chapter with papermill, build the Jupyter Book into _build/html
#   make test   set up .venv, run the unit/integration tests, then nbval over the chapters in quick mode
#   make test-slow  the end-to-end tests make test leaves out (solutions executed, SIGKILL loop, grading,
#                   browser); CI (.ci/run) runs make test, then make test-slow
#   make publish  execute every chapter on real TESS and record the executed chapters in published/
#
# Options: make book BOOK_ARGS="--dataset tess --data-dir /path/to/TESS"   (see python -m ser_utils book --help)
#          make book BOOK_ARGS="--quick --dataset demo"     tiny sizes, minutes; BOOK_ARGS="--only 03,05" some chapters
# make book resumes: chapters already executed with the same parameters are skipped (--force re-runs them);
# executed copies, kernel logs and book-timings.json go to _build/, the HTML to _build/html.

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BOOK_ARGS ?=
PYTEST_ARGS ?=
TEST_ARTIFACTS := $(CURDIR)/_build/test-artifacts

.PHONY: book test test-slow install unit slow notebooks browser-deps clean publish

install: $(STAMP)

# What make book and make test install: the library plus the extras that executing, building and
# testing the book need (pyproject.toml: [book] jupyter-book/papermill, [test] pytest/nbval,
# [pretrained] the Whisper chapter, [grid] dask). JupyterLab is `pip install -e .[lab]`.
EXTRAS ?= book,test,pretrained,grid

# Every module is compiled at install, on all cores (pip compiles one file after another: about 55 s
# of the install here; compileall -j0 after --no-compile: about 35 s). Skipping the compilation would
# be faster still, but where PYTHONDONTWRITEBYTECODE is set (as on this machine) no process ever
# caches what it compiles, and each of the tests' ~50 fresh interpreters recompiles TensorFlow and
# torch on import: the unit tests took 10.9 min instead of about 7.6.
# ser_utils.warmup then compiles librosa's numba helpers in one process: two processes compiling them at
# once (grid workers, test workers, a grader beside a chapter) can write mismatched cache files, and every
# later pitch track segfaults (numba issue 10128); it also rebuilds a cache that already crashes.
# Re-install whenever the dependency list changes. torch==2.13.0 is whatever build pip finds first:
# install it from PyTorch's CPU or CUDA index before running make on a new machine (README, "Run it").
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet --no-compile -e ".[$(EXTRAS)]"
	$(BIN)/python -m compileall -q -j0 $$($(BIN)/python -c "import sysconfig; print(sysconfig.get_path('purelib'))") >/dev/null || true
	$(BIN)/python -m ser_utils.warmup
	@touch $@

book: $(STAMP) browser-deps
	$(BIN)/python -m ser_utils book $(BOOK_ARGS)

# Execute every chapter on real TESS (SER_TESS_DIR or BOOK_ARGS="--data-dir DIR") and record the
# executed chapters in published/ (what readers of the repository open), then build the HTML.
publish: $(STAMP)
	$(BIN)/python -m ser_utils book --dataset tess --force --publish published $(BOOK_ARGS)

test: $(STAMP) browser-deps
	$(MAKE) unit notebooks

# The end-to-end tier (pytest markers `slow` and `browser`, about 13 min on 2 cores): each test executes
# a notebook, kills a command at random points, grades a student notebook or drives Chromium over a
# built book, 10-270 s apiece. Split off so that make test stays a loop a developer runs (6.4 min with
# the install from a fresh clone); CI runs both, so nothing goes untested.
test-slow: $(STAMP) browser-deps
	$(MAKE) slow

# Both test runs spread over every core (pytest-xdist; a file's tests stay on one worker, so module
# fixtures are built once): TEST_JOBS=1 runs them in one process. They stay two runs: nbval reuses the
# demo corpus and feature caches the unit tests left in TEST_ARTIFACTS (one run of both, tried at
# 0029f6b, took 10.4 min against 9.8 for the two, and SER_DATASET=demo broke two unit tests).
# tests/parallel.py gives each worker its own numba cache (numba's shared one is not safe for two
# processes compiling librosa's helpers at once).
TEST_JOBS ?= auto
XDIST := $(if $(filter 1,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile -p tests.parallel)

# The longest test files go first (explicit files keep their order; a folder would be collected alphabetically):
# xdist hands out files in that order, so a long file no longer starts last and runs alone at the end.
UNIT_FIRST := tests/test_solutions.py tests/test_integrity.py tests/test_grading.py tests/test_browser.py \
	tests/test_encoder_family.py tests/test_browser_published.py
UNIT_FILES := $(UNIT_FIRST) $(filter-out $(UNIT_FIRST),$(sort $(wildcard tests/test_*.py)))

unit: $(STAMP)
	SER_QUICK=1 SER_ARTIFACTS_DIR=$(TEST_ARTIFACTS) $(BIN)/python -m pytest $(XDIST) -m "not slow and not browser" \
		$(UNIT_FILES) $(PYTEST_ARGS)

slow: $(STAMP)
	SER_QUICK=1 SER_ARTIFACTS_DIR=$(TEST_ARTIFACTS) $(BIN)/python -m pytest $(XDIST) -m "slow or browser" \
		$(UNIT_FILES) $(PYTEST_ARGS)

# nbval re-runs each chapter in quick mode on the demo corpus and fails on any error.
notebooks: $(STAMP)
	SER_QUICK=1 SER_DATASET=demo SER_ARTIFACTS_DIR=$(TEST_ARTIFACTS) \
		$(BIN)/python -m pytest $(XDIST) --nbval-lax -p no:cacheprovider book/ $(PYTEST_ARGS)

# Headless Chromium for the browser test of the built book (Debian package); best effort:
# the test skips with its reason when the browser cannot be installed.
browser-deps:
	@command -v chromium >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium espeak-ng >/dev/null) \
			|| echo "warning: could not install chromium/espeak-ng; the browser test and chapter 10.12's new voice are skipped"; \
		else echo "note: chromium or espeak-ng not found and not root; the browser test and chapter 10.12's new voice are skipped"; fi; }

clean:
	rm -rf _build
