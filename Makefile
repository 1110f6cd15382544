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

# Every test. Under CI=true nothing that needs QEMU, the toolchain, sshd, TFLM or the Pi's arm64 root
# filesystem may skip. Two workers, one test file each at a time (module fixtures are built once);
# tests are independent. Its set-up also builds (once, then cached) the arm64 root the Pi test uses.
test:
	tools/setup.sh --pi-rootfs
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=20 $(PYTEST_ARGS)
