"""The linux driver: a computer the host deploys to (the Raspberry Pi), through edgeattack.deploy.

flash() copies the agent and the model over SSH and leaves the agent running (CONVENTIONS "Board
lifecycle"); commands reach it at the profile's port (an ssh:// URL: each command opens its own
tunnel) or --port. undeploy() stops the deployed agent (`flash --stop`).
"""
from __future__ import annotations

import dataclasses

from ...errors import UsageError
from ..board import BoardDriver, LinkTimeouts


class LinuxBoard(BoardDriver):
    kind = "linux"
    started_by_host = False
    link_timeouts = LinkTimeouts(2.0, 20.0)
    time_source = "device"  # the agent's own clock on the board
    host_tools = ("ssh",)
    flash_options = ("host", "remote_dir", "port_mode", "serial", "remote_port", "python", "identity",
                     "ssh_config", "no_install", "pip_args", "stop", "kernels")
    # LiteRT's kernel sets the agent can run (agent.KERNELS): XNNPACK where it applies, or reference
    LITERT_KERNELS = ("auto", "ref")

    def _agent_port(self, port_mode, serial, remote_port) -> str:
        """Where the agent listens on the board: tcp://127.0.0.1:PORT (loopback only) or a serial
        device."""
        from ...deploy.pi import DEFAULT_SERIAL, DEFAULT_TCP_PORT

        default = (self.profile.deploy or {}).get("agent_port") or f"tcp://127.0.0.1:{DEFAULT_TCP_PORT}"
        default_tcp = default.startswith("tcp://")
        if port_mode is None:
            port_mode = "tcp" if default_tcp else "gadget" if "ttyGS" in default else "uart"
        if port_mode == "tcp":
            if serial:
                raise UsageError("--serial applies to --port-mode gadget or uart, not tcp")
            port = remote_port or (int(default.rsplit(":", 1)[1]) if default_tcp else DEFAULT_TCP_PORT)
            return f"tcp://127.0.0.1:{port}"  # the board never exposes the agent to its network
        if remote_port:
            raise UsageError(f"--remote-port applies to --port-mode tcp, not {port_mode}")
        if serial:
            return serial
        if not default_tcp and ("ttyGS" in default) == (port_mode == "gadget"):
            return default  # the profile names this mode's device
        return DEFAULT_SERIAL[port_mode]

    def _remote_dir(self, remote_dir) -> str:
        return remote_dir or (self.profile.deploy or {}).get("remote_dir") or "edgeattack-agent"

    def flash(self, *, dry_run: bool = False, echo=print, host=None, remote_dir=None, port_mode=None,
              serial=None, remote_port=None, python=None, identity=None, ssh_config=None,
              no_install=False, pip_args=None, stop=False, kernels=None) -> dict:
        import shlex

        from ...deploy.pi import PiDeploy, flash_pi, target_for

        if kernels and kernels not in self.LITERT_KERNELS:
            raise UsageError(f"--kernels {kernels}: board {self.name} runs LiteRT, whose kernel sets are "
                             f"auto (XNNPACK where it applies) and ref (reference kernels); choose one of those")
        model = self._model()
        deploy = self.profile.deploy or {}
        dep = PiDeploy(
            target=target_for(self.profile, host, identity, ssh_config),
            model_path=model,
            remote_dir=self._remote_dir(remote_dir),
            python=python or deploy.get("python") or "python3",
            agent_port=self._agent_port(port_mode, serial, remote_port),
            runtime=self.profile.runtime,
            board=self.name,
            install=not no_install,
            pip_args=shlex.split(pip_args) if pip_args is not None else None,
            kernels=kernels or "auto",
        )
        result = flash_pi(dep, dry_run=dry_run, echo=echo)
        if dry_run:
            return self.summary(dry_run=True, steps=[s.name for s in result])
        echo(f"deployed {model} (sha256 {result.model_sha256}{', 16-byte aligned' if result.aligned else ''}) "
             f"to {result.host}:{result.remote_dir}; agent pid {result.pid} listening on {result.agent_port}")
        if result.aligned:
            echo(f"note: {model} was not 16-byte aligned; the board runs the aligned bytes (sha256 above), "
                 f"so give sessions the aligned model (`edgeattack compress` writes aligned models)")
        if result.port_url:
            echo(f"reach it with: --port {result.port_url}")
        else:
            echo(f"reach it through the host side of {result.agent_port} (e.g. --port /dev/ttyACM0)")
        return self.summary(dry_run=False, **dataclasses.asdict(result))

    def undeploy(self, *, dry_run: bool = False, echo=print, host=None, remote_dir=None, identity=None,
                 ssh_config=None, **_ignored) -> dict:
        """Stop the agent a previous flash left running."""
        from ...deploy import ssh
        from ...deploy.pi import Step, stop_pi, stop_script, target_for

        target = target_for(self.profile, host, identity, ssh_config)
        rdir = self._remote_dir(remote_dir)
        if dry_run:
            script = stop_script(rdir)
            step = Step("stop", "", target.ssh_args() + [ssh.remote_command(script)], script=script)
            echo(f"# plan: stop the agent in {rdir} on {target.label} (dry run: nothing is executed)")
            for line in step.render():
                echo(line)
            return self.summary(dry_run=True, stopped=None, host=target.label, remote_dir=rdir)
        done = stop_pi(target, rdir)
        echo(f"{target.label}:{rdir}: {done}")
        return self.summary(dry_run=False, stopped=done, host=target.label, remote_dir=rdir)


DRIVER = LinuxBoard
