"""When to restart a service that keeps crashing: bounded exponential back-off.

`beamhub up` restarts a crashed SSO provider instead of taking the hub down with it.  A
provider that crashes at once again (a bad key file, its port taken) must not be restarted in
a tight loop, and one that ran for a while before crashing deserves a quick restart: the delay
doubles from ``first`` with each crash in a row, never exceeds ``maximum``, and starts from
``first`` again once the service stayed up ``stable`` seconds.  Pure: the caller supplies the
clock readings, so the policy is tested without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays between restarts of one service."""

    first: float = 1.0
    maximum: float = 30.0
    stable: float = 60.0
    failures: int = 0

    def crashed(self, uptime: float) -> float:
        """The service died after ``uptime`` seconds up: how long to wait before starting it again."""
        if uptime >= self.stable:
            self.failures = 0
        delay = min(self.first * 2**self.failures, self.maximum)
        self.failures += 1
        return delay
