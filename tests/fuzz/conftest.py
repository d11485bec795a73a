"""Print the fuzzer's outcome counts per subpackage at the end of the session."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from . import harness
    from .test_fuzz import OUTCOMES

    if OUTCOMES:
        terminalreporter.write_sep("-", "bad-input fuzzer: outcomes per subpackage")
        terminalreporter.write_line(harness.format_table(harness.summary(OUTCOMES)))
