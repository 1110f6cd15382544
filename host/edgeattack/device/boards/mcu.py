"""The mcu driver: a physical microcontroller running the project's C firmware, programmed with
pyOCD through its debug probe. flash() builds the firmware (edgeattack.firmware.build) and programs
it; the board then keeps running and commands reach it at the profile's serial port or --port.
pyOCD is an optional dependency, needed only to program a board (not for --dry-run).
"""
from __future__ import annotations

from ...errors import EdgeAttackError, UsageError
from ..board import BoardDriver, LinkTimeouts


class McuBoard(BoardDriver):
    kind = "mcu"
    started_by_host = False
    link_timeouts = LinkTimeouts(5.0, 30.0)
    time_source = "device"  # the chip's own cycle counter
    host_tools = ("arm-none-eabi-gcc",)
    flash_options = ("kernels",)
    kernels: str | None = None  # the kernel set to build (resolve_kernels); flash(kernels=...) sets it

    def _target(self) -> str:
        target = (self.profile.deploy or {}).get("target")
        if not target:
            raise UsageError(f"board profile {self.profile.path}: deploy.target (the pyOCD target name) "
                             f"is missing")
        return target

    def prepare(self):
        """Build the firmware for the model (cached); returns the BuildResult."""
        from ...firmware.build import build_firmware

        return build_firmware(self._model(), self.profile, kernels=self.kernels)

    def flash(self, *, dry_run: bool = False, echo=print, **options) -> dict:
        if options.get("kernels"):
            from ...firmware.build import resolve_kernels

            self.kernels = resolve_kernels(self.profile, options["kernels"])
        model, target = self._model(), self._target()
        if dry_run:
            echo(f"# plan: build the {self.name} firmware for {model}, then program it with pyOCD "
                 f"(target {target}) through the first connected debug probe, and reset the board")
            return self.summary(dry_run=True, pyocd_target=target, port=self.profile.port, firmware=None)
        try:
            import pyocd  # noqa: F401 - optional dependency, only for physical microcontrollers
        except ImportError:
            raise EdgeAttackError(f"board {self.name} is flashed with pyOCD, which is not installed: "
                                  f"pip install pyocd") from None
        build = self.prepare()
        from pyocd.core.helpers import ConnectHelper
        from pyocd.flash.file_programmer import FileProgrammer

        with ConnectHelper.session_with_chosen_probe(target_override=target, blocking=False) as session:
            if session is None:
                raise EdgeAttackError(f"board {self.name}: no debug probe found: connect the board's USB "
                                      f"(ST-LINK / J-Link / CMSIS-DAP) and check `pyocd list`")
            FileProgrammer(session).program(str(build.elf))
            session.target.reset()
        echo(f"flashed {build.elf} to {self.name} (pyOCD target {target}); port {self.profile.port}")
        return self.summary(dry_run=False, pyocd_target=target, port=self.profile.port,
                            firmware=build.to_dict())


DRIVER = McuBoard
