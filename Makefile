# The two commands: `make demo` runs the main job end to end, `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo demo-deps test up migrate flower bench lint clean system-deps gpu-check demo-model

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# TrackEval, the tracking metrics' test oracle, declares opencv-python, which would shadow the
	# pinned opencv-python-headless; what the tests use of it needs only numpy and scipy.
	$(BIN)/python -m pip install -q --no-deps trackeval==1.3.0
	touch $(STAMP)

install: $(STAMP)

demo: install demo-deps
	$(BIN)/python -m workers demo

# The demo's real footage: Debian's opencv-doc ships OpenCV's vtest.avi; installed when root.
demo-deps:
	@[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >/dev/null) || echo "opencv-doc not installed: the demo uses generated clips"; }

# Test-only system tools (docker-compose validates the compose file; headless Chromium and its
# driver run the dashboard's browser test); installed when root.
system-deps:
	@command -v docker-compose >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null) || echo "docker-compose not installed: its test will be skipped"; }
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "chromium not installed: the browser test will be skipped"; }

test: install system-deps
	$(BIN)/python -m pytest

up: install
	$(BIN)/python -m workers up

migrate: install
	$(BIN)/python -m models migrate

flower: install
	$(BIN)/python -m workers flower

# On a machine with a GPU: the GPU pool pinned to a device running a torchvision model in half
# precision and an ONNX model on the CUDA execution provider through real detection jobs, and the
# detection benchmark on the GPU. Skipped, saying why, where CUDA is absent.
gpu-check: install
	$(BIN)/python -m pytest -n 0 -m gpu -rs -s tests/test_gpu.py

# A real trained pedestrian detector, converted once (TensorFlow only in a throw-away environment).
demo-model: migrate
	$(BIN)/python -m models fetch-demo-model

bench: install
	$(BIN)/python bench/queue_overhead.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf var .pytest_cache
