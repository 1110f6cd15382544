"""On a paced line (--pace-baudrate) the host's timeouts grow by the line time of what is in flight,
so a slow line is not mistaken for lost frames: no retransmission, wire bytes as on an unpaced link."""
from __future__ import annotations

from edgeattack.link.client import Client
from edgeattack.link.faults import FaultInjector
from edgeattack.link.pace import PacedPort
from edgeattack.link.transport import open_port
from test_link_client_server import SumHandler, device_factory, inputs  # noqa: F401 - fixture

BAUD = 38400  # 3,000-byte loads take 0.78 s each on the line, the request timeout is 0.5 s


def _run(dev, xs, pace, faults=None):
    def factory():
        port = open_port(dev.url)
        port = PacedPort(port, pace) if pace else port
        return faults.wrap(port) if faults is not None else port

    with Client(factory, timeout=0.5, total_timeout=2.0, protocol=1) as client:
        client.connect()
        out = [int(r.output_raw[0, 0]) for r in client.infer_many(xs, inflight=2)]
        stats = client.stats
    return out, stats


def test_paced_line_is_not_mistaken_for_loss(device_factory):  # noqa: F811
    xs = inputs(4, nbytes=3000, seed=4)
    want = [int(x.astype(int).sum()) for x in xs]
    fast = device_factory(SumHandler(nbytes=3000))
    out, clean = _run(fast, xs, None)
    assert out == want
    for wrap in (None, FaultInjector()):  # through a (fault-free) fault injector too
        handler = SumHandler(nbytes=3000)
        dev = device_factory(handler)
        out, paced = _run(dev, xs, BAUD, wrap)
        assert out == want and handler.inputs == [x.tobytes() for x in xs]
        assert paced.retries == 0, paced  # 0.5 s + the line time of the bytes in flight
        if clean.retries == 0:  # (a very busy machine may delay even the unpaced run)
            assert paced.wire_bytes_sent == clean.wire_bytes_sent
            assert paced.wire_bytes_received == clean.wire_bytes_received
