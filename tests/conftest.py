"""Shared fixtures.

``data_dir`` is the real reference data (``NAS_DATA``, else ``../shared/data`` beside the
repository). Tests that need it skip with the reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_data_dir() -> Path | None:
    env = os.environ.get("NAS_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "nb201" / "nb201_ground_truth.csv").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = find_data_dir()
    if d is None:
        pytest.skip("reference data not found: set NAS_DATA or place it at ../shared/data")
    return d
