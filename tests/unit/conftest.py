"""Unit tests: pyrt's pure parts (the gate, the planners, parsers, formats, the import graph),
without root, without containers, without the leak check of tests/conftest.py (no pyroute2, no
nft): `python -m pytest --confcutdir=tests/unit tests/unit` runs them alone, in seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))  # tests/configs.py: the config every test starts from


@pytest.fixture(autouse=True)
def no_leaks():
    """Unit tests make nothing on the host: tests/conftest.py's leak check has nothing to find."""
    yield


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A bundle directory with an empty rootfs."""
    (tmp_path / "rootfs").mkdir()
    return tmp_path
