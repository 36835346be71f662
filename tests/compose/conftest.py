"""The compose suite needs a Docker engine: the one DOCKER_HOST names, the one `make engine`
started, or the default socket. Without one it is skipped with the reason, except under CI=true
(`.ci/run` starts an engine, so there a missing one is a failure). The images deploy/ names must
exist: pulled where a registry answers, else the stand-ins (tests/compose/standins) are built."""

import os
import subprocess

import pytest

from tests.compose import standins
from tests.compose.stack import docker, engine

pytestmark = pytest.mark.compose


@pytest.fixture(scope="session")
def docker_host() -> str:
    host, source = engine()
    if host is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the compose suite must run in CI: {source}")
        pytest.skip(source)
    os.environ["DOCKER_HOST"] = host
    # Stacks an interrupted earlier run left behind (each test's project is named gs-test-...).
    for project in set(docker("ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}').split()):
        if project.startswith("gs-test-"):
            subprocess.run(["docker", "compose", "-p", project, "down", "-v", "--timeout", "5"], capture_output=True)
    kinds = standins.ensure(log=lambda line: print(f"compose suite: {line}", flush=True))
    print(f"compose suite: engine {host} ({source}); images: {kinds}", flush=True)
    return host
