"""One driver module per board kind (device.board.Board): `<kind>.py` defines `DRIVER`."""
