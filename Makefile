# `make demo` and `make test` set up .venv on first use, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast package notebooks benchmark teachers clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[app,tune,dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/kd-keras demo --overwrite

# The tests run in parallel, one process per core (at most 4: each holds
# its own TensorFlow), a free process taking tests from a busy one.
PARALLEL := -n auto --maxprocesses 4 --dist worksteal

# It lists its ten slowest tests, to keep an eye on the suite's time.
test: $(VENV)/.installed
	$(BIN)/ruff check kd_keras tests benchmarks
	$(BIN)/python -m pytest $(PARALLEL) --durations=10

# The inner loop while developing: every test but the whole programs (the
# notebooks, the README's program, the jobs of several processes).
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest $(PARALLEL) -m "not program"

# The release: an sdist and a wheel built from it (dist/), installed with
# the app extra into a new virtual environment, where the package imports,
# help() reads it and the command line trains: a file left out of the
# package, or a requirement not declared, fails here.
PACKAGE := build/package
package: $(VENV)/.installed
	rm -rf dist $(PACKAGE)
	$(BIN)/python -m build --outdir dist .
	$(PYTHON) -m venv $(PACKAGE)
	$(PACKAGE)/bin/python -m pip install --quiet "$$(ls dist/*.whl)[app]"
	cd $(PACKAGE) && bin/kd-keras --help > /dev/null
	cd $(PACKAGE) && bin/python -c "import pydoc, kd_keras; \
	    pydoc.render_doc(kd_keras); print('kd_keras', kd_keras.__version__)"
	cd $(PACKAGE) && bin/kd-keras train-teacher --dataset digits --epochs 1 \
	    --output teacher.h5

# The notebooks at their full budgets, their outputs stored (the tests run
# them at a small one).
notebooks: $(VENV)/.installed
	$(BIN)/python benchmarks/notebooks.py

benchmark: $(VENV)/.installed
	$(BIN)/python benchmarks/article_mlp.py --dataset fashion_mnist
	$(BIN)/python benchmarks/article_mlp.py --dataset digits --batch-size 64 \
	    --teacher-epochs 30
	$(BIN)/python benchmarks/methods.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/memory.py

clean:
	rm -rf $(VENV) build dist *.egg-info

teachers: $(VENV)/.installed
	PATH="$(BIN):$$PATH" sh saved_models/train_teachers.sh --overwrite
