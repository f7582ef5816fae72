"""The restart policy of a crashing service: doubling, bounded, forgiven after a stable run."""

from beamhub.hub.restart import Backoff


def test_delays_double_up_to_the_bound():
    backoff = Backoff(first=1, maximum=10, stable=60)
    assert [backoff.crashed(uptime=0.5) for _ in range(6)] == [1, 2, 4, 8, 10, 10]


def test_a_stable_run_starts_the_back_off_again():
    backoff = Backoff(first=1, maximum=10, stable=60)
    for _ in range(4):
        backoff.crashed(uptime=1)
    assert backoff.crashed(uptime=120) == 1
    assert backoff.crashed(uptime=1) == 2
