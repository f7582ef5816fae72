"""Which lines of the hub's log `beamhub up` echoes to its terminal (beamhub.hub.platform.for_terminal).

Lines as JupyterHub 6, Jupyter Server 2, Tornado and the jobs service write them; the live check
is in test_up_down.py.
"""

from __future__ import annotations

import io
import time

from beamhub.hub.platform import LogEcho, for_terminal

SHOWN = [
    "[I 2026-11-30 08:09:51.905 JupyterHub app:3493] Running JupyterHub version 6.1.1",
    "[I 2026-11-30 08:09:51.948 alembic.runtime.migration migration:205] Context impl SQLiteImpl.",
    "[I 2026-11-30 08:10:16.834 JupyterHub base:1033] User logged in: alice",
    "[I 2026-11-30 08:10:17.220 JupyterHub spawner:2153] Spawning /venv/bin/jupyterhub-singleuser",
    "[I 2026-11-30 08:10:23.559 JupyterHub base:1192] User alice took 6.509 seconds to start",
    "[I 2026-11-30 08:13:17.328 beamhub-jobs] alice submitted job tomo-1a2b3c4d: beamhub tomo s.h5 in tomo (pid 9)",
    "[W 2026-11-30 08:10:22.435 LabApp] 'extra_template_paths' was found in both NotebookApp and ServerApp.",
    "[E 2026-11-30 08:13:17.328 beamhub-jobs] Uncaught exception POST /services/beamhub-jobs/api/jobs (127.0.0.1)",
    "[E 2026-11-30 08:13:17.400 JupyterHub log:192] 500 GET /hub/api/users/alice (@127.0.0.1) 3.10ms",
    "Traceback (most recent call last):",
    "beamhub-sso: OpenID provider http://127.0.0.1:8001 ready",
]
HIDDEN = [
    "[I 2026-11-30 08:09:52.516 JupyterHub log:192] 200 GET /hub/api/ (@127.0.0.1) 1.50ms",
    "[W 2026-11-30 08:09:52.603 JupyterHub log:192] 404 GET /hub/services/beamhub-jobs/api/jobs (@127.0.0.1) 53.36ms",
    "[I 2026-11-30 08:10:18.002 JupyterHub pages:516] alice is pending spawn",
    "[I 2026-11-30 08:09:52.551 JupyterHub _xsrf_utils:130] Setting new xsrf cookie for b'None:i2a' {'path': '/hub/'}",
    "[I 2026-11-30 08:10:16.514 JupyterHub oauth2:126] OAuth redirect: http://127.0.0.1:8000/hub/oauth_callback",
    "[I 2026-11-30 08:10:23.558 ServerApp] 200 GET /user/alice/api (@127.0.0.1) 11.13ms",
    "[I 2026-11-30 08:10:22.416 ServerApp] jupyter_lsp | extension was successfully linked.",
    "[W 2026-11-30 08:10:23.905 ServerApp] Skipping XSRF check for insecure request GET /user/alice/oauth_callback",
    "401 GET /services/beamhub-jobs/api/jobs (127.0.0.1): send your hub token",
    "404 GET /services/beamhub-jobs/ (127.0.0.1) 3.82ms",
]


def test_requests_and_session_chatter_stay_in_the_log():
    assert [line for line in SHOWN if not for_terminal(line)] == []
    assert [line for line in HIDDEN if for_terminal(line)] == []


def test_an_indented_tail_follows_its_record():
    assert not for_terminal("    {'Host': '127.0.0.1'}", hidden_before=True)
    assert for_terminal("    at file:///x/yarn.js:4:393", hidden_before=False)


def test_echo_shows_kept_lines_whole_and_cuts_long_ones(tmp_path):
    log = tmp_path / "hub.log"
    log.write_bytes(b"")
    terminal = io.StringIO()
    echo = LogEcho(log, terminal)
    with open(log, "ab") as f:
        f.write((HIDDEN[0] + "\n" + SHOWN[2] + "\n").encode())
        f.write(b"x" * 5000 + b"\n" + b"[I 2026-11-30 08:10:16.834 JupyterHub base:1033] User logged")
        f.flush()
        time.sleep(0.5)
        f.write(b" in: bob\n")  # a line written in two pieces is judged whole
    echo.stop()
    lines = terminal.getvalue().splitlines()
    assert lines[0] == SHOWN[2]
    assert lines[1].startswith("x" * 400 + " ... (cut; the whole line is in ") and len(lines[1]) < 600
    assert lines[2].endswith("User logged in: bob") and len(lines) == 3
