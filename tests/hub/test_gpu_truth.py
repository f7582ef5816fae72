"""GPU cards tell the truth (issue 17, item 2): no GPU here, free GPUs in plain words.

No GPU exists on the machines these tests run on, so the probes are fed stand-ins that say
what they are: a mock ``nvidia-smi`` script and a mock ``/dev`` folder.
"""

from __future__ import annotations

import stat
from types import SimpleNamespace

import pytest

from beamhub.hub import local as local_module
from beamhub.hub.catalog import load_catalog
from beamhub.hub.gpus import count_local_gpus, device_file_count, nvidia_smi_count
from beamhub.hub.identity import Identity
from beamhub.hub.local import LocalBeamSpawner
from beamhub.hub.menu import gpu_availability

CATALOG = load_catalog()
ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))


def _mock_nvidia_smi(tmp_path, output: str, code: int = 0) -> str:
    script = tmp_path / "mock-nvidia-smi"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] || exit 9\nprintf '%s' '{output}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_nvidia_smi_mock_with_two_gpus_counts_two(tmp_path):
    smi = _mock_nvidia_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-1)\nGPU 1: NVIDIA H200 (UUID: GPU-2)\n")
    assert nvidia_smi_count(smi) == 2


def test_nvidia_smi_mock_without_a_driver_counts_none(tmp_path):
    smi = _mock_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it could not communicate with the driver", 9)
    assert nvidia_smi_count(smi) == 0


def test_without_nvidia_smi_the_device_files_of_a_mock_dev_decide(tmp_path):
    dev = tmp_path / "mock-dev"
    dev.mkdir()
    assert nvidia_smi_count(str(tmp_path / "absent-nvidia-smi")) is None
    assert count_local_gpus(str(tmp_path / "absent-nvidia-smi"), str(dev)) == 0
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-modeset"):
        (dev / name).touch()
    assert device_file_count(dev) == 2  # the control and UVM devices are not GPUs
    count_local_gpus.cache_clear()
    assert count_local_gpus(str(tmp_path / "absent-nvidia-smi"), str(dev)) == 2
    count_local_gpus.cache_clear()


def _spawner(**config) -> LocalBeamSpawner:
    spawner = LocalBeamSpawner(**config)
    spawner.user = SimpleNamespace(name="alice", admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = ALICE
    return spawner


async def test_gpu_cards_on_a_platform_without_gpu_say_they_run_on_the_cpu():
    html = await _spawner(local_gpus=0)._render_launch_cards()
    assert html.count("No GPU on this machine") == 2  # phasing-gpu and dl-gpu, not the CPU cards
    html = await _spawner(local_gpus=1)._render_launch_cards()
    assert "No GPU on this machine" not in html


def test_the_local_spawner_asks_the_probe(monkeypatch):
    monkeypatch.setattr(local_module, "count_local_gpus", lambda: 0)  # a mock probe: this machine has none
    assert _spawner().local_gpus == 0
    monkeypatch.setattr(local_module, "count_local_gpus", lambda: 4)
    assert _spawner().local_gpus == 4


def test_the_first_progress_message_of_a_gpu_start_without_gpu_says_cpu():
    spawner = _spawner(local_gpus=0)
    notes = spawner.gpu_notes(CATALOG.get("phasing-gpu"))
    assert len(notes) == 1 and "no GPU" in notes[0] and "run on the CPU" in notes[0]
    assert spawner.gpu_notes(CATALOG.get("tomo")) == []
    assert _spawner(local_gpus=1).gpu_notes(CATALOG.get("phasing-gpu")) == []
    assert _spawner(local_gpus=None).gpu_notes(CATALOG.get("phasing-gpu")) == []  # Kubernetes: not ours to say


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "summary, line",
    [
        (None, None),
        ({"free_gpus": 3, "total_gpus": 8, "stale": False}, "3 of 8 GPUs free now"),
        ({"free_gpus": 3, "total_gpus": 8, "measured": NOW - 300}, "3 of 8 GPUs free now · load data 5 min old"),
        ({"free_gpus": 3, "total_gpus": 8, "stale": True}, "3 of 8 GPUs free now · load data stale"),
        ({"free_gpus": 0, "total_gpus": 8, "expected_wait": 1200}, "none of 8 GPUs free now; expected wait 20 min"),
        ({"free_gpus": 0, "total_gpus": 8}, "none of 8 GPUs free now"),
        ({"free_gpus": 0, "total_gpus": 0}, "no GPUs in this cluster"),
        ({"free_gpus": "many"}, None),
    ],
)
def test_free_gpus_in_plain_words(summary, line):
    assert gpu_availability(summary, NOW) == line
