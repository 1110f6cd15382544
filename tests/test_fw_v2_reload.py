"""A PATCH the device refuses STALE or NOT_LOADED (its slot changed or emptied behind the host's back:
another host loaded it, the device restarted) is sent again by the host as a full load: the caller
gets the right output, the device runs each query exactly once, and `stats.reloads` counts it."""
from __future__ import annotations

import logging

import numpy as np

from edgeattack.link import messages as m
from edgeattack.link.client import Client
from edgeattack.link.transport import open_port
from test_link_client_server import SumHandler, device_factory  # noqa: F401 - fixture
from test_link_v2 import _requests_seen, varied


def test_stale_and_not_loaded_patches_are_reloaded(device_factory, caplog):  # noqa: F811
    handler = SumHandler(nbytes=200)
    dev = device_factory(handler)
    seen = _requests_seen(dev.server)
    xs = varied(8, nbytes=200, seed=3)
    with caplog.at_level(logging.INFO, logger="edgeattack.link.client"), \
            Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        out = [client.infer(xs[0]), client.infer(xs[1])]  # a load, then a patch
        dev.server._generation[0] += 1  # another host loaded slot 0 meanwhile
        out.append(client.infer(xs[2]))  # PATCH -> STALE -> SLOT_LOAD + SLOT_INFER
        out.append(client.infer(xs[3]))  # patched again against the reloaded input
        dev.server._unload(0)  # the slot emptied (a device that restarted)
        out.append(client.infer(xs[4]))  # PATCH -> NOT_LOADED -> full load
        # pipelined, two slots; slot 0 changes behind the host's back once xs[5] is answered, so
        # xs[7], a PATCH against xs[5], is refused STALE while xs[6] may still be in flight

        def other_host(index, result):
            if index == 0:  # xs[5], the first input of this call
                dev.server._generation[0] += 1

        more = list(client.infer_many(xs[5:8], inflight=2, slots=[0, 1, 0], on_result=other_host))
        assert client.stats.reloads == 3
    types = [t for _, t in seen if t != m.INFO]
    assert types[:10] == [m.SLOT_LOAD, m.SLOT_INFER, m.PATCH,
                          m.PATCH, m.SLOT_LOAD, m.SLOT_INFER,  # the STALE patch, reloaded
                          m.PATCH,
                          m.PATCH, m.SLOT_LOAD, m.SLOT_INFER]  # the NOT_LOADED patch, reloaded
    results = out + more
    assert [int(r.output_raw[0, 0]) for r in results] == [int(x.astype(int).sum()) for x in xs]
    assert handler.inputs == [x.tobytes() for x in xs]  # each query ran once, in order
    assert dev.server.inferences == len(xs)
    lines = [r.getMessage() for r in caplog.records if "refused a PATCH" in r.getMessage()]
    assert len(lines) == 3 and "STALE" in lines[0] and "NOT_LOADED" in lines[1] and "STALE" in lines[2]


def test_other_refusals_still_raise(device_factory):  # noqa: F811
    """Only STALE and NOT_LOADED of a PATCH are recovered; a bad input is still one clear error."""
    import pytest

    from edgeattack.errors import DeviceError

    dev = device_factory(SumHandler(nbytes=16))
    with Client(lambda: open_port(dev.url), timeout=0.5, total_timeout=5) as client:
        client.connect()
        with pytest.raises(DeviceError, match="ERROR SIZE"):
            client.infer(np.zeros(17, np.int8))
        assert client.stats.reloads == 0
