"""`beamhub submit` checks the job's options with the job command's own parser before submitting."""

from __future__ import annotations

import pytest

from beamhub import cli
from beamhub.hub.jobs import client


@pytest.fixture
def calls(monkeypatch):
    """The jobs service, replaced by a recorder: what would have been submitted."""
    sent = []

    def fake_call(method, path, body=None, text=False):
        sent.append((method, path, body))
        return {"id": "job-1", "state": "queued"}

    monkeypatch.setattr(client, "_call", fake_call)
    return sent


@pytest.mark.parametrize(
    "argv, words",
    [
        (["submit", "tomo", "scan.h5", "--out", "r.h5", "--bogus", "3"], ["beamhub tomo", "--bogus"]),
        (["submit", "tomo", "scan.h5"], ["beamhub tomo", "--out"]),
        (["submit", "phase", "job.json", "--iterations", "3"], ["beamhub phase", "--iterations"]),
        (["submit", "emc", "config.ini", "--ranks", "2"], ["beamhub emc", "--iterations"]),
        (["submit", "emc", "config.ini", "--ranks", "two"], ["--ranks", "two"]),
        (["submit", "tomo", "scan.h5", "--out", "r.h5", "--algorithm", "magic"], ["--algorithm", "magic"]),
    ],
)
def test_options_the_job_would_refuse_are_refused_before_submitting(calls, capsys, argv, words):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert calls == []


@pytest.mark.parametrize(
    "argv, args, ranks",
    [
        (
            ["submit", "tomo", "scan.h5", "--out", "r.h5", "--center", "auto"],
            ["scan.h5", "--out", "r.h5", "--center", "auto"],
            1,
        ),
        (
            ["submit", "emc", "config.ini", "--ranks", "4", "--", "--iterations", "30"],
            ["config.ini", "--iterations", "30"],
            4,
        ),
        (["submit", "phase", "job.json"], ["job.json"], 1),
    ],
)
def test_valid_options_are_submitted_unchanged(calls, capsys, argv, args, ranks):
    assert cli.main(argv) == 0
    [(method, _path, body)] = calls
    assert method == "POST" and body["args"] == args and body["ranks"] == ranks
    assert "submitted job-1" in capsys.readouterr().out
