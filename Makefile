# The front door: on a fresh machine with Python 3.11 and make, these two do everything.
#   make demo    the virtual environment (made and installed when missing or older than pyproject.toml),
#                then the demo estate and the gateway on :8000
#   make test    the same environment, then the whole test suite (CI runs exactly this, via .ci/run)
# Options go in ARGS: make demo ARGS="--customers 5000 --port 8080"; make test ARGS="-x tests/test_cache.py".
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

demo: $(STAMP)
	$(PY) gateway.py demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Customer Graph needs Python 3.11 or newer as $(PYTHON) (make PYTHON=python3.11 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) data
