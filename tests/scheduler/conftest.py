"""Shared fixtures of the scheduler tests."""

import time

import pytest

from beamhub.scheduler.load import LoadSnapshot


@pytest.fixture
def snapshot_factory():
    def build(rows: dict, age: float = 0.0):
        return LoadSnapshot(dict(rows), fetched_at=time.time() - age)

    return build
