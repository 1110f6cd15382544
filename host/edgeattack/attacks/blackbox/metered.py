"""Measured energy for a black-box attack's crafting queries (`--energy measured`, a board's meter).

A session measures its records with the board's meter (one window per INFER, the k-th window the
k-th INFER sent). The queries a black-box attack sends while crafting are inferences too: with a
meter, `metered_crafting` runs the attack inside one acquisition of that meter and charges each
window to the sample whose query it was (the Oracle's query log), so attack.json's energy per
adversarial example and per query is measured, like the session's records. Without a meter the
device's Results carry the profile's estimate (or nothing) and this does nothing.

A meter that delivers fewer or more windows than queries were sent, or stops streaming, fails the
command with the meter's one-line error: no measured figure is made up.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ...energy import MeterError


@contextlib.contextmanager
def metered_crafting(attack, target, meter):
    """Run the body (the attack on `target`, a DeviceTarget) inside one acquisition of `meter`
    (not yet opened; None: do nothing), then charge the attack's new runs with the windows."""
    if meter is None or target is None:
        yield
        return
    first_run, first_query = len(attack.runs), target.queries
    meter.open()
    try:
        meter.start()
        yield
        meter.stop()
        sent = target.queries - first_query
        windows = meter.windows(iterations=[1] * sent) if sent else []
    finally:
        meter.close()
    energy = np.array([w.energy_per_iteration_j for w in windows], dtype=np.float64)
    for run in attack.runs[first_run:]:
        charge(run, energy, first_query)


def charge(run: dict, window_energy: np.ndarray, first_query: int) -> None:
    """Set a run's (an Oracle.costs() dict) per-sample energy to the sum of its queries' windows:
    window k measured the target's query number first_query + k."""
    numbers, samples = run["query_log"]
    if len(numbers) != int(run["queries"].sum()):
        raise MeterError(f"measured energy: {int(run['queries'].sum())} crafting queries but only "
                         f"{len(numbers)} were sent one INFER each; their windows cannot be told apart")
    k = numbers - first_query
    if len(k) and (k.min() < 0 or k.max() >= len(window_energy)):
        raise MeterError(f"measured energy: query {int(k.max()) + 1} has no meter window "
                         f"({len(window_energy)} windows)")
    energy = np.zeros(len(run["queries"]), dtype=np.float64)
    np.add.at(energy, samples, window_energy[k])
    run["energy_j"], run["energy_source"] = energy, "measured"
