# The two set-up commands of the README. Both install what they need first (tools/setup.sh).
VENV ?= .venv
export EDGEATTACK_VENV := $(VENV)

.PHONY: demo test setup
setup:
	tools/setup.sh

# The main job on the embedded default: bundled digits data, emulated boards, fully offline.
demo: setup
	$(VENV)/bin/edgeattack demo -o runs/demo --force

# Every test. Under CI=true nothing that needs QEMU, the toolchain, sshd or TFLM may skip.
test: setup
	$(VENV)/bin/python -m pytest -q --durations=20 $(PYTEST_ARGS)
