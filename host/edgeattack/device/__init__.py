"""Devices: board profiles, emulated boards behind a pty, and the Device / open_device API."""
