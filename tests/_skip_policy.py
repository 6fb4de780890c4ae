"""A skip is a test that did not run: only a machine that lacks something may cause one.

Loaded by `tests/conftest.py`. Every skipped test or module whose reason is not in
`ALLOWED_SKIP_REASONS` fails the run (exit status 1) and is listed in the summary, so a
broken import or a missing install step cannot pass as "skipped". Works with
pytest-xdist: the reports are counted where the run's exit status is decided, on the
controller.
"""

from __future__ import annotations

import pytest

ALLOWED_SKIP_REASONS = frozenset(
    {
        "needs a CUDA device",  # GPU tests, on a machine without one
        "POSIX file-size limit",  # RLIMIT_FSIZE tests, on Windows
        "needs birnn's native kernels (a C++ compiler)",  # native-kernel tests; never in CI
    }
)

_offenders: list[str] = []


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _record(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason not in ALLOWED_SKIP_REASONS:
        _offenders.append(f"{report.nodeid or report.fspath}: {reason}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: its reports are judged on the controller
    if _offenders and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _offenders:
        return
    terminalreporter.section("skips outside the allow-list", sep="=", red=True, bold=True)
    for line in _offenders:
        terminalreporter.line(line)
    terminalreporter.line(
        "Only a missing machine feature may skip a test (tests/_skip_policy.py): "
        "fix the cause, or make the test fail."
    )
