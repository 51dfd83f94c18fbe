# The two commands the README promises: `make demo` and `make test`, on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.orbitlite-installed

.PHONY: install system demo test ctest pytest bench clean

install: system $(STAMP)

# The Debian packages in system-packages.txt, installed (as root) when one is missing.
system:
	@missing=$$(grep -v '^#' system-packages.txt | xargs -n1 sh -c 'dpkg -s "$$0" >/dev/null 2>&1 || echo "$$0"'); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "run make as root (or sudo apt-get install $$missing)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Re-installs when the build or the C kernels change (Python sources are installed editable).
$(STAMP): pyproject.toml CMakeLists.txt $(wildcard onboard/native/*.c onboard/native/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[ground,hil,dev]"
	touch $@

demo: install
	$(BIN)/orbitlite demo

test: ctest pytest

ctest:
	cmake -S . -B build/ctest -DORBITLITE_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build build/ctest --parallel 2
	ctest --test-dir build/ctest --output-on-failure

# One worker per core; the tests of one board (or one SLURM cluster) run in one worker, in order
# (tests/conftest.py).
pytest: install
	$(BIN)/python -m pytest -n auto

bench: install
	ORBITLITE_FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest tests/bench --benchmark-enable

clean:
	rm -rf build $(VENV) demo-output
