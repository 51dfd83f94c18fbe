# The two commands the README promises: `make demo` and `make test`, on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.orbitlite-installed

.PHONY: install demo test ctest pytest bench clean

install: $(STAMP)

# Re-installs when the build or the C kernels change (Python sources are installed editable).
$(STAMP): pyproject.toml CMakeLists.txt $(wildcard onboard/native/*.c onboard/native/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[ground,dev]"
	touch $@

demo: install
	$(BIN)/orbitlite demo

test: ctest pytest

ctest:
	cmake -S . -B build/ctest -DORBITLITE_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build build/ctest --parallel 2
	ctest --test-dir build/ctest --output-on-failure

pytest: install
	$(BIN)/python -m pytest

bench: install
	ORBITLITE_FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest tests/bench --benchmark-enable

clean:
	rm -rf build $(VENV) demo-output
