"""Reboot recovery in the link (docs/protocol.md, "Reboots"): the Python reference device restarted
under a host, over a real TCP socket. Sessions on restarted emu-tflm agents and QEMU boards are in
tests/test_session_reboot.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeattack.errors import DeviceError
from edgeattack.link import messages as m
from edgeattack.link.client import Client
from edgeattack.link.transport import open_port
from test_link_client_server import device_factory  # noqa: F401 - fixture

SHA_A, SHA_B = "a" * 64, "b" * 64


class SumModel:
    """Output: the int8 input's sum as int32 (a pure function of the input). Counts every run."""

    def __init__(self, nbytes=64):
        self.nbytes = nbytes
        self.sha256 = SHA_A
        self.runs = 0

    def info(self):
        return {"board": "test", "model_sha256": self.sha256, "tick_hz": 1_000_000,
                "input": {"shape": [1, self.nbytes], "dtype": "int8"},
                "output": {"shape": [1, 1], "dtype": "int32"}}

    def input_spec(self):
        return m.DTYPE_INT8, self.nbytes

    def infer(self, data, repeat):
        self.runs += repeat
        total = int(np.frombuffer(data, np.int8).astype(np.int64).sum())
        return np.array([total], "<i4").tobytes(), m.DTYPE_INT32, repeat

    def reset(self):
        pass


def die_after_runs(server, at: set[int]) -> list:
    """Make the device restart right after it ran its k-th model-running request (k in `at`), before
    that request's reply leaves: the inference ran, nobody saw it, and everything else in flight
    meets a freshly booted device. Returns the list of k's that happened."""
    inner = server.handle_frame
    count = [0]
    died = []

    def handle(frame):
        before = server.inferences
        reply = inner(frame)
        if server.inferences > before:  # it ran the model (not a replay, not a refusal)
            count[0] += 1
            if count[0] in at:
                died.append(count[0])
                server.restart()
                return None
        return reply

    server.handle_frame = handle
    return died


def queries(n, nbytes=64, seed=0):
    """A black-box attack's stream: each query a few bytes away from the one before (patches)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, nbytes, dtype=np.int8)
    out = []
    for _ in range(n):
        x = x.copy()
        x[rng.integers(0, nbytes, 3)] = rng.integers(-128, 128, 3)
        out.append(x)
    return out


def test_restarts_mid_stream_lose_and_duplicate_nothing(device_factory):  # noqa: F811
    model = SumModel()
    dev = device_factory(model, reply_cache=8, slots=4)
    died = die_after_runs(dev.server, {7, 19})
    xs = queries(40)
    with Client(lambda: open_port(dev.url), timeout=0.3, total_timeout=5) as client:
        client.connect()
        first_boot = client.boot_id
        results = list(client.infer_many(xs, inflight=8))
        assert died == [7, 19]
        assert [int(r.output_raw.reshape(-1)[0]) for r in results] == \
            [int(x.astype(np.int64).sum()) for x in xs]  # every result, once, in order
        s = client.stats
        assert s.reboots == 2 and client.boot_id not in (None, 0, first_boot)
        assert client.inferences_total == len(xs)  # the sum over boots of each boot's highest
        # exactly the two inferences that ran unseen: every other request in flight at each death
        # was answered NOT_SYNCED on each copy, so it never reached the dead boot (counting every
        # model-running request unanswered when the host noticed gave more)
        assert s.inferences_unobserved == 2
        assert model.runs == len(xs) + 2  # each was run again after the restart
        assert client.info()["inferences"] == len(xs) - 19 + 2  # this boot's own counter


def test_unseen_run_stays_counted_when_its_resend_meets_the_new_boot(device_factory):  # noqa: F811
    """One query at a time: the device dies right after running the 3rd, nothing else is in flight,
    so the host hears nothing until its timeout resends that query, which the new boot answers
    NOT_SYNCED. That answer covers only the resend: the first copy ran unseen and is counted."""
    model = SumModel()
    dev = device_factory(model, slots=4)
    died = die_after_runs(dev.server, {3})
    xs = queries(5)
    with Client(lambda: open_port(dev.url), timeout=0.3, total_timeout=5) as client:
        client.connect()
        results = [client.infer(x) for x in xs]
        assert died == [3] and client.stats.reboots == 1 and client.stats.retries >= 1
        assert client.stats.inferences_unobserved == 1
        assert client.inferences_total == len(xs) and model.runs == len(xs) + 1
    assert [int(r.output_raw.reshape(-1)[0]) for r in results] == \
        [int(x.astype(np.int64).sum()) for x in xs]


def test_restart_while_idle_is_seen_in_info_and_slots_are_reloaded(device_factory):  # noqa: F811
    model = SumModel()
    dev = device_factory(model, slots=4)
    xs = queries(6)
    with Client(lambda: open_port(dev.url), timeout=0.3, total_timeout=5) as client:
        client.connect()
        list(client.infer_many(xs[:3], inflight=1))
        old = client.boot_id
        dev.server.restart()
        info = client.info()  # INFO syncs the restarted device: its boot_id is 0, not ours
        assert client.stats.reboots == 1 and info["boot_id"] == client.boot_id not in (0, old)
        results = list(client.infer_many(xs[3:], inflight=1))
        assert [int(r.output_raw.reshape(-1)[0]) for r in results] == \
            [int(x.astype(np.int64).sum()) for x in xs[3:]]
        # the slots were forgotten with the boot: full loads, not patches refused and reloaded
        assert client.stats.reloads == 0
        assert client.inferences_total == 6 and client.stats.inferences_unobserved == 0


def test_device_back_with_another_model_is_one_clear_error(device_factory):  # noqa: F811
    model = SumModel()
    dev = device_factory(model, slots=4)
    died = die_after_runs(dev.server, {3})
    inner_restart = dev.server.restart

    def restart_with_other_model():
        model.sha256 = SHA_B  # the board came back with other firmware
        inner_restart()

    dev.server.restart = restart_with_other_model
    with Client(lambda: open_port(dev.url), timeout=0.3, total_timeout=5) as client:
        client.connect()
        with pytest.raises(DeviceError) as err:
            list(client.infer_many(queries(10), inflight=4))
    assert died == [3]
    text = str(err.value)
    assert "\n" not in text and SHA_A in text and SHA_B in text, text
    assert "restarted" in text
