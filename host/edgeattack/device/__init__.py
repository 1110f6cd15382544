"""Devices: the Board protocol and one driver per board kind (board.py, boards/), and the Device /
open_device API (api.py) through which everything above talks to a board."""
from .api import Device, Result, open_device
from .board import Board, LinkTimeouts, board_for, start_board

__all__ = ["Board", "Device", "LinkTimeouts", "Result", "board_for", "open_device", "start_board"]
