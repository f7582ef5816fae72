"""`beamhub scheduler` command line: settings file, option precedence, clear errors."""

import subprocess
import sys

import pytest

from beamhub.errors import UsageError
from beamhub.scheduler.commands.serve import build_parser, settings_from_args


def parse(argv):
    return settings_from_args(build_parser("beamhub scheduler").parse_args(argv))


def test_config_file_then_options_win(tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text("prometheus_url: http://prom:9090\nrefresh_interval: 30\nstrategy: target-load-packing\n")
    settings = parse(["--config", str(config), "--strategy", "least-allocated", "--port", "9000"])
    assert settings.prometheus_url == "http://prom:9090" and settings.refresh_interval == 30
    assert settings.strategy == "least-allocated" and settings.port == 9000
    assert settings.effective_stale_after == 90


@pytest.mark.parametrize(
    "text, words",
    [
        ("promethus_url: http://x\n", "unknown scheduler setting(s) 'promethus_url'"),
        ("- a\n", "must hold a mapping"),
        ("hot_threshold: 3\n", "'hot_threshold': must be a fraction"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, words):
    config = tmp_path / "scheduler.yaml"
    config.write_text(text)
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse(["--config", str(config)])


def test_cli_errors_are_one_line_without_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "beamhub", "scheduler", "--prometheus", "prom:9090"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("beamhub scheduler: error: scheduler setting 'prometheus_url'")
    assert "Traceback" not in done.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "beamhub", "scheduler", "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "nodeCacheCapable" in shown.stdout and "refresh_interval" in shown.stdout
