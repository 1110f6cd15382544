# The two set-up commands of the README. Both install what they need first (tools/setup.sh).
VENV ?= .venv
export EDGEATTACK_VENV := $(VENV)

.PHONY: demo test setup
setup:
	tools/setup.sh

# The main job on the embedded default: the default study (bundled digits data, emu-tflm and the
# qemu-m4 emulated board, fully offline), ending with runs/default/report.html.
demo: setup
	$(VENV)/bin/edgeattack study default -o runs/default --force

# Every test. Under CI=true nothing that needs QEMU, the toolchain, sshd or TFLM may skip.
# Two workers, one test file each at a time (module fixtures are built once); tests are independent.
test: setup
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=20 $(PYTEST_ARGS)
