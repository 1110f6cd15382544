"""Where the package data lives: board profiles and firmware sources, installed or in a checkout."""
from __future__ import annotations

import importlib.resources
from pathlib import Path


def _package_dir(package: str) -> Path:
    return Path(str(importlib.resources.files(package)))


def boards_dir() -> Path:
    """The folder holding board profiles (`*.yaml`) and board ports."""
    return _package_dir("edgeattack._boards")


def firmware_dir() -> Path:
    """The folder holding the C firmware sources (Makefile, runtime, protocol)."""
    return _package_dir("edgeattack._firmware")


def package_data_dir() -> Path:
    """Data shipped inside host/edgeattack itself (built-in recipes, studies)."""
    return _package_dir("edgeattack")
