"""From a fresh clone, `make run` brings the system up and the README's curl example works."""

import os
import re
import signal
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, eventually, require_embedded_ports_free

pytestmark = pytest.mark.e2e


def readme_curl_example() -> tuple[str, str, str]:
    """The README's first sh block after 'read its count with curl': (sign, confirm, count commands)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"read its count with curl.*?```sh\n(.*?)```", readme, re.S).group(1)
    commands = [c for c in re.split(r"\n(?=curl )", block.replace("\\\n", " ")) if c.startswith("curl")]
    sign, confirm, count = (re.sub(r"\n#.*", "", c).strip() for c in commands)
    return sign, confirm, count


def fresh_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    # Uncommitted work under test too: copy the working tree's files (tracked, or new and not
    # ignored) over the clone.
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            (clone / name).write_bytes(source.read_bytes())
    return clone


def prepared_venv(clone: Path) -> None:
    """A new venv in the clone that sees this test run's installed packages (no re-download);
    `make run` still installs the project into it itself."""
    venv.EnvBuilder(with_pip=True).create(clone / ".venv")
    site = next((clone / ".venv" / "lib").glob("python*/site-packages"))
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_relative_to(sys.prefix))
    (site / "groundswell-test-deps.pth").write_text(ours + "\n")


def test_make_run_from_a_fresh_clone_serves_the_readme_example(tmp_path):
    require_embedded_ports_free()
    clone = fresh_clone(tmp_path)
    prepared_venv(clone)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PIP_NO_INPUT": "1"}
    env = {k: v for k, v in env.items() if not k.startswith(("GROUNDSWELL_", "NATS_URL", "DATABASE_URL"))}
    log = (tmp_path / "make-run.log").open("w")
    process = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        eventually(lambda: "Groundswell is running" in (tmp_path / "make-run.log").read_text()
                   or process.poll() is not None, timeout_s=300, message="make run up")
        assert process.poll() is None, (tmp_path / "make-run.log").read_text()[-3000:]
        sign, confirm, count = readme_curl_example()

        def run(command: str) -> str:  # as a new user would, from the checkout
            return subprocess.run(["bash", "-c", command], cwd=clone, capture_output=True, text=True).stdout

        def read_count() -> int:
            return httpx.Response(200, content=run(count)).json()["count"]

        eventually(lambda: read_count() == 0, message="count 0 before signing")
        assert httpx.Response(200, content=run(sign)).json() == {"status": "accepted"}
        eventually(lambda: list((clone / ".data" / "mail").glob("*.eml")), message="the confirmation email")
        assert read_count() == 0  # not before the link is followed
        assert run(confirm).strip() == "303"
        eventually(lambda: read_count() == 1, message="count 1 after confirming")
        home = httpx.get("http://127.0.0.1:8080/", timeout=5)  # the list, the seed petition one click away
        seed = "/p/tell-denvers-mayor-to-stop-obstructing-immigration-law"
        assert home.status_code == 200 and f'Featured: <a href="{seed}">' in home.text
        page = httpx.get(f"http://127.0.0.1:8080{seed}", timeout=5)  # the seed petition's page, through Caddy
        assert page.status_code == 200 and "Today: <bdi>Patrick</bdi> is counting on you" in page.text
        eventually(lambda: re.search(r"<strong data-count>1</strong> person has signed",
                                     httpx.get(f"http://127.0.0.1:8080{seed}", timeout=5).text), message="the page shows 1")
        eventually(lambda: f'<a href="{seed}"' in httpx.get("http://127.0.0.1:8080/petitions", timeout=5).text
                   and "<strong data-listed-count>1 signature</strong>" in httpx.get("http://127.0.0.1:8080/", timeout=5).text,
                   message="the list shows the seed petition with its 1 signature")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        process.wait(timeout=60)
    text = (tmp_path / "make-run.log").read_text()
    # make itself reports the interrupt; what matters is that every part stopped cleanly.
    assert text.count("Application shutdown complete.") == 3, text[-3000:]
    assert "Server Exiting" in text
    for port in (8001, 8002, 8003, 8080):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/livez", timeout=0.5)
    assert "ada@example.org" not in text and "Ada Lovelace" not in text
