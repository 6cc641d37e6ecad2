# The two commands of the quick start: `make demo` and `make test`.
# Both set everything up from a fresh clone: a virtualenv in .venv (ignored by git).
# `make demo-http`: the HTTP example (examples/http) end to end, on loopback.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LINKS := $(VENV)/interlock-links

.PHONY: setup demo demo-http test lint typecheck pytest bench bench-peers clean redis-server

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The editable install maps dsl/, compiler/ and runtime/ into interlock.* through setuptools'
# package-dir, which it serves with an import hook that type checkers (mypy, pyright) cannot
# follow: they would not find `interlock` in a service's code. So the package is also laid out
# as installed, as a tree of symlinks (.venv/interlock-links/interlock: the files and subpackages
# of interlock/, and the folders dsl/, compiler/, runtime/, grammar/), put on the path by a .pth file, which
# both Python and type checkers read. Remade when a file is added to or removed from interlock/
# (the folder's time changes); the linked folders show their new files at once.
$(LINKS)/.made: $(STAMP) interlock
	rm -rf $(LINKS) && mkdir -p $(LINKS)/interlock
	for f in interlock/*.py interlock/py.typed; do ln -s "$(CURDIR)/$$f" $(LINKS)/interlock/; done
	for d in interlock/*/; do case "$$d" in *__pycache__*) ;; *) ln -s "$(CURDIR)/$${d%/}" $(LINKS)/interlock/;; esac; done
	for d in dsl compiler runtime grammar; do ln -s "$(CURDIR)/$$d" $(LINKS)/interlock/$$d; done
	echo "$(CURDIR)/$(LINKS)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/interlock-links.pth"
	touch $@

setup: $(STAMP) $(LINKS)/.made

demo: setup
	@echo "== interlock check examples/shop"
	$(BIN)/interlock check examples/shop
	@echo "examples/shop checks clean"
	@echo "== interlock test examples/shop"
	$(BIN)/interlock test examples/shop
	@echo "== interlock simulate examples/shop (billing fails 20% of attempts)"
	$(BIN)/interlock simulate examples/shop --events examples/events.jsonl --fail billing=0.2

# Two small HTTP services as targets, `interlock serve` in front, a few CloudEvents posted
# with curl; everything on free loopback ports, stopped at the end.
demo-http: setup
	$(BIN)/interlock check examples/http
	$(BIN)/interlock test examples/http
	BIN=$(BIN) bash examples/http/demo.sh

test: lint typecheck pytest

lint: setup
	$(BIN)/ruff check .

# mypy --strict on the package as installed: the tree of symlinks made by `setup`.
typecheck: setup
	cd $(LINKS) && "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" -p interlock

# The Redis tests start a real redis-server on a free loopback port; install it when missing.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "== installing redis-server (Debian's package) for the Redis store tests"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq redis-server; }

pytest: setup redis-server
	$(BIN)/pytest

bench: setup redis-server
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/parse.py
	$(BIN)/python bench/match.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/redis_delivery.py
	$(BIN)/python bench/http_delivery.py

# interlock against Celery, Dramatiq, arq and FastStream on one redis-server (bench/README.md).
# The peers get virtualenvs of their own (.venv-peers, .venv-arq), made on the first run.
bench-peers: setup redis-server
	$(BIN)/python bench/peers.py

clean:
	rm -rf $(VENV) .venv-peers .venv-arq .build .pytest_cache .mypy_cache .ruff_cache .hypothesis
