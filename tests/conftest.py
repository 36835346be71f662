import pytest
import structlog

from tests.system import System

# Apps run in-process (integration tests) log through structlog's defaults, which render an
# exception with rich and every local variable: a thousand lines and seconds of CPU on the app's
# event loop each, enough to stall it while a database outage is being logged. Plain tracebacks,
# as the services themselves write (shared/logging.py).
structlog.configure(processors=[*structlog.get_config()["processors"][:-1],
                                structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)])


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    """Each integration and end-to-end test runs on SQLite and on PostgreSQL."""
    return request.param


@pytest.fixture
def system(tmp_path, backend):
    """The whole system, started fresh for one test, on the given database backend."""
    running = System(tmp_path, backend)
    try:
        yield running.start()
    finally:
        running.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which PostgreSQL the PostgreSQL runs used (CI uses a testcontainers one), and how the
    compose suite went (CI must show it ran, not skipped)."""
    from tests.databases import postgres_server

    compose: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "nodeid", "").startswith("tests/compose/") and (report.when == "call" or outcome != "passed"):
                compose[outcome] = compose.get(outcome, 0) + 1
    if compose:
        terminalreporter.write_line("compose suite (tests/compose): " + ", ".join(f"{n} {o}" for o, n in compose.items()))

    if postgres_server.cache_info().currsize:
        url, source = postgres_server()
        where = url.rsplit("@", 1)[-1] if url else "none"
        terminalreporter.write_line(f"PostgreSQL for the PostgreSQL runs: {source} ({where})")
