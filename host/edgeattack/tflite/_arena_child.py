"""Child process of arena.find_arena_size: `python -m edgeattack.tflite._arena_child MODEL SIZE...`.

Tries the arena sizes in the order given (the parent passes them largest first). A try constructs a
TFLM interpreter with that arena and invokes it once on zeros. After each success it prints
"EA-ARENA ok SIZE"; at the first clean failure it prints "EA-ARENA fail SIZE" and stops (a smaller
arena fails too). A too-small arena may instead segfault this process (FACTS): the parent then takes
the size after the last "ok" as failed. Nothing runs after a failure, so a corrupted heap cannot
fake a later success.
"""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    from edgeattack.tflite.reader import read_model

    with open(argv[0], "rb") as f:
        model = f.read()
    # Input shapes from our reader: asking TFLM for an input index it lacks is not known to be safe.
    inputs = [np.zeros(t.shape, dtype=t.dtype) for t in read_model(model).input_tensors]
    for size in (int(s) for s in argv[1:]):
        try:
            interp = runtime.Interpreter.from_bytes(model, arena_size=size)
            for i, x in enumerate(inputs):
                interp.set_input(x, i)
            interp.invoke()
            del interp
        except Exception as e:  # noqa: BLE001 - any clean failure means "too small" (or unrunnable)
            print(f"EA-ARENA fail {size} {type(e).__name__}: {e}".replace("\n", " "), flush=True)
            return 0
        print(f"EA-ARENA ok {size}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
