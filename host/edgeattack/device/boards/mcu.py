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
    flash_options = ("kernels", "protocol")
    # the firmware speaks either (docs/mlperf.md: the MLPerf-mode firmware); flash(protocol=...) or the
    # profile's `protocol` chooses
    protocols = ("edgeattack", "mlperf")
    kernels: str | None = None  # the kernel set to build (resolve_kernels); flash(kernels=...) sets it
    protocol: str | None = None  # the firmware's protocol; None: the profile's

    def _target(self) -> str:
        target = (self.profile.deploy or {}).get("target")
        if not target:
            raise UsageError(f"board profile {self.profile.path}: deploy.target (the pyOCD target name) "
                             f"is missing")
        return target

    def prepare(self):
        """Build the firmware for the model (cached); returns the BuildResult."""
        from ...firmware.build import build_firmware

        return build_firmware(self._model(), self.profile, kernels=self.kernels, protocol=self._protocol())

    def _protocol(self) -> str:
        protocol = self.protocol or self.profile.protocol or "edgeattack"
        if protocol not in self.protocols:
            raise UsageError(f"protocol {protocol!r} for board {self.name}: choose {' or '.join(self.protocols)}")
        return protocol

    def _probe(self) -> str | None:
        from ...deploy.pyocd_flash import check_probe_kind

        probe = (self.profile.deploy or {}).get("probe")
        check_probe_kind(self.name, probe)
        return probe

    def flash(self, *, dry_run: bool = False, echo=print, **options) -> dict:
        """Check pyOCD, the target's support (pack) and the probe (J-Link library) before building,
        then build, program and reset. Each missing piece is one line naming the fix."""
        from ...deploy import pyocd_flash as pf

        if options.get("kernels"):
            from ...firmware.build import resolve_kernels

            self.kernels = resolve_kernels(self.profile, options["kernels"])
        if options.get("protocol"):
            self.protocol = options["protocol"]
        model, target, probe, protocol = self._model(), self._target(), self._probe(), self._protocol()
        # the MLPerf-mode firmware answers MLPerf Tiny's DUT commands instead (docs/mlperf.md)
        firmware = "MLPerf-mode firmware" if protocol == "mlperf" else "firmware"
        speaks = "MLPerf Tiny's DUT protocol" if protocol == "mlperf" else "the protocol"
        if dry_run:
            echo(f"# plan: build the {self.name} {firmware} for {model}, then program it with pyOCD "
                 f"(target {target}) through the first connected debug probe, and reset the board")
            try:
                pf.require_pyocd(self.name)
                source = pf.target_source(target)
            except EdgeAttackError:
                source = "builtin" if target.lower() not in pf.NEEDS_PACK else None  # asked pyOCD's tables
            if source is None:
                echo(f"# pyOCD needs the device pack for {target}: `{pf.pack_install_command(target)}` "
                     f"(once; checked before building)")
            if probe == "jlink":
                echo("# the probe is a SEGGER J-Link: pyOCD needs SEGGER's J-Link library (libjlinkarm, "
                     "from https://www.segger.com/downloads/jlink/; checked before building)")
            echo(f"# then the board speaks {speaks} on {self.profile.port} at {self.profile.baudrate} baud")
            return self.summary(dry_run=True, pyocd_target=target, probe=probe, port=self.profile.port,
                                protocol=protocol, firmware=None)
        pf.require_pyocd(self.name)
        source = pf.check_target(self.name, target)
        if probe == "jlink":
            pf.check_jlink_library(self.name)
        found = pf.find_probe(self.name, probe)
        build = self.prepare()
        pf.program(build.elf, target, found.unique_id)
        echo(f"flashed {build.elf} to {self.name} (pyOCD target {target}, {source}; probe "
             f"{found.description} {found.unique_id}); {speaks} on {self.profile.port}")
        return self.summary(dry_run=False, pyocd_target=target, probe=probe, port=self.profile.port,
                            protocol=protocol, firmware=build.to_dict())


DRIVER = McuBoard
