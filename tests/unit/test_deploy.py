"""The compose files and the Dockerfile, checked without a Docker engine."""

import re
from pathlib import Path

import pytest
import yaml

from services.cli import build_parser, settings_classes
from shared.settings_doc import env_names, settings_table

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
REQUIRED = {"signing": {"GROUNDSWELL_ADMIN_TOKEN", "NATS_URL", "DATABASE_URL"},
            "counter": {"NATS_URL", "DATABASE_URL"}, "notifier": {"NATS_URL", "DATABASE_URL", "SMTP_HOST"}}
SECRETS = ("GROUNDSWELL_ADMIN_TOKEN", "POSTGRES_PASSWORD")


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def merged(*names: str) -> dict:
    """Compose's own merge for what these files use: services' maps merge key by key."""
    result: dict = {"services": {}}
    for name in names:
        for service, config in load(name)["services"].items():
            target = result["services"].setdefault(service, {})
            for key, value in config.items():
                if isinstance(value, dict) and isinstance(target.get(key), dict):
                    target[key] = {**target[key], **value}
                else:
                    target[key] = value
    return result


COMPOSITIONS = [("compose.yml",), ("compose.yml", "compose.cluster.yml")]


def groundswell_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if str(s.get("image", "")).startswith("groundswell")}


@pytest.mark.parametrize("files", COMPOSITIONS, ids="+".join)
def test_every_command_exists_in_the_cli(files):
    services = groundswell_services(merged(*files))
    assert {"signing", "counter", "notifier", "migrate-signing", "migrate-counter", "migrate-notifier"} <= set(services)
    for name, service in services.items():
        command = service["command"]
        assert command[0] == "groundswell", name
        build_parser().parse_args(command[1:])  # exits (fails the test) on an unknown command


@pytest.mark.parametrize("files", COMPOSITIONS, ids="+".join)
def test_every_variable_is_read_and_every_required_one_given(files):
    for name, service in groundswell_services(merged(*files)).items():
        settings_service = service["command"][1]
        read = env_names(settings_classes()[settings_service])
        given = set(service.get("environment", {}))
        assert given - set(read) == set(), f"{name} is given variables its settings never read"
        if name == settings_service:
            assert REQUIRED[name] <= given, f"{name} misses {REQUIRED[name] - given}"
        else:
            assert "DATABASE_URL" in given


@pytest.mark.parametrize("files", COMPOSITIONS, ids="+".join)
def test_every_dependency_has_a_condition_and_a_healthcheck(files):
    services = merged(*files)["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: a bare depends_on list"
        for dependency, rule in depends.items():
            condition = rule["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), (name, dependency)
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            else:
                assert services[dependency].get("restart") == "no", f"{dependency} should be one-shot"


def test_nats_and_postgres_healthchecks_are_the_meaningful_ones():
    services = load("compose.yml")["services"]
    assert "/healthz?js-enabled-only=true" in " ".join(services["nats"]["healthcheck"]["test"])
    assert services["postgres"]["healthcheck"]["test"][1:4] == ["pg_isready", "-h", "127.0.0.1"]
    assert "/data" in services["nats"]["volumes"][0] and "8222" in " ".join(services["nats"]["command"])
    assert services["mailpit"]["profiles"] == ["dev"]


def test_secrets_are_required_not_defaulted():
    text = (DEPLOY / "compose.yml").read_text()
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), secret


def test_cluster_runs_three_nats_nodes_and_three_replicas():
    services = merged("compose.yml", "compose.cluster.yml")["services"]
    nodes = [n for n in services if n.startswith("nats")]
    assert len(nodes) == 3
    for node in nodes:
        assert "--cluster_name" in services[node]["command"] and "healthcheck" in services[node]
    for name in ("signing", "counter", "notifier"):
        environment = services[name]["environment"]
        assert environment["GROUNDSWELL_STREAM_REPLICAS"] == "3"
        assert len(environment["NATS_URL"].split(",")) == 3


def test_dockerfile_copies_what_the_commands_need_and_runs_as_non_root():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2, "a build stage and a final stage"
    build, final = stages
    for needed in ("pyproject.toml", "shared", "services"):
        assert re.search(rf"^COPY .*\b{needed}\b", build, re.M), needed
    assert "pip install ." in build
    assert re.findall(r"^COPY .*", final, re.M) == ["COPY --from=build /opt/groundswell /opt/groundswell"]
    assert re.search(r"^USER groundswell", final, re.M)
    for package in ("shared", "services"):
        assert (ROOT / package / "__init__.py").exists()


def test_caddy_routes_counts_to_the_counter_and_the_rest_to_signing():
    text = (DEPLOY / "Caddyfile").read_text()
    # compose uses the defaults after the colon; `groundswell dev` sets the variables to 127.0.0.1 ports
    assert "reverse_proxy {$GROUNDSWELL_COUNTER_UPSTREAM:counter:8002}" in text
    assert "reverse_proxy {$GROUNDSWELL_SIGNING_UPSTREAM:signing:8001}" in text
    count, live = (re.search(rf"path_regexp {name} (\S+)", text).group(1) for name in ("count", "live"))
    assert all(re.match(count, p) for p in ("/petitions/abc/count", "/petitions/my-slug/count"))
    assert re.match(live, "/petitions/my-slug/count/events") and not re.match(count, "/petitions/a/count/events")
    assert re.match(live, "/petitions/my-slug/stats") and not re.match(live, "/petitions/a/stats/x")
    assert re.match(live, "/petitions/my-slug.json") and not re.match(live, "/petitions/a/b.json")
    for path in ("/petitions/abc", "/petitions/abc/signatures", "/p/abc", "/", "/petitions/../count"):
        assert not re.match(count, path) and not re.match(live, path), path


def test_the_front_door_serves_the_files_signing_writes_with_the_counters_cache_policy():
    from services.counter.settings import CounterSettings

    text = (DEPLOY / "Caddyfile").read_text()
    services = load("compose.yml")["services"]
    folder = services["signing"]["environment"]["GROUNDSWELL_PUBLIC_DIR"]
    assert f"root * {{$GROUNDSWELL_PUBLIC_DIR:{folder}}}" in text
    assert f"public:{folder}" in services["signing"]["volumes"]
    assert f"public:{folder}:ro" in services["web"]["volumes"]  # the front door only reads
    assert "public" in load("compose.yml")["volumes"]
    for document in ("/counts/{re.count.1}.json", "/pages/{re.page.1}{re.page.2}.{page_language}.html"):
        assert f"file {document}" in text, document
    counter = CounterSettings(_env_file=None)
    policy = f"public, max-age={counter.count_max_age_s}, stale-while-revalidate={counter.count_stale_s}"
    assert f'header Cache-Control "{policy}"' in text  # a count file is cached like the counter's answer


def test_readme_settings_table_matches_the_settings_classes():
    readme = (ROOT / "README.md").read_text()
    assert settings_table(settings_classes()) in readme, "regenerate it with: groundswell settings"


def test_the_front_door_sends_the_pages_security_headers_and_hides_what_is_private():
    from shared.http import PAGE_HEADERS

    text = (DEPLOY / "Caddyfile").read_text()
    block = re.search(r"\n\theader \{\n(.*?)\n\t\}", text, re.S).group(1)
    unframed = re.search(r"\n\theader @unframed \{\n(.*?)\n\t\}", text, re.S).group(1)
    sent = dict(re.findall(r'^\t\t([A-Za-z-]+) "([^"]*)"$', block + "\n" + unframed, re.M))
    assert sent == PAGE_HEADERS  # the same policy whether a page comes from the file or from signing
    assert "\t\tdefer" in block and "\t\tdefer" in unframed  # on proxied answers too, replacing the service's
    # Only the widget may be framed, and then by whom signing's own CSP says (GROUNDSWELL_EMBED_ORIGINS).
    assert "@unframed not path /w/*" in text and "Frame" not in block and "Content-Security" not in block
    assert "unsafe-inline" not in PAGE_HEADERS["Content-Security-Policy"]
    assert 'header @https Strict-Transport-Security "max-age=31536000; includeSubDomains"' in text
    assert "@https protocol https" in text
    private = re.search(r"@private path (.*)", text).group(1).split()
    assert {"/internal/*", "/metrics", "/docs", "/redoc"} <= set(private)


def test_the_image_is_built_once_and_never_pulled():
    """Issue 22: signing, counter and notifier each carried `build:`, so compose built the image
    three times at once (two left dangling), and the migrate jobs tried a registry first."""
    services = load("compose.yml")["services"]
    ours = {name: s for name, s in services.items() if s.get("image") == "groundswell:latest"}
    assert {"signing", "counter", "notifier", "migrate-signing", "migrate-counter", "migrate-notifier"} <= set(ours)
    builders = [name for name, s in ours.items() if "build" in s]
    assert builders == ["signing"] and ours["signing"]["pull_policy"] == "build"
    assert all(s["pull_policy"] == "never" for name, s in ours.items() if name != "signing")
    assert all(s.get("init") is True for s in ours.values())


def test_every_long_running_service_is_healthchecked_and_restarted():
    services = load("compose.yml")["services"]
    for name in ("nats", "postgres", "signing", "counter", "notifier", "web"):
        assert "healthcheck" in services[name], name
        assert services[name]["restart"] == "unless-stopped", name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_the_front_door_closes_slow_and_idle_connections():
    """Issue 21: Caddy had no header or idle timeout (5,000 half-open connections held 60 s)."""
    text = (DEPLOY / "Caddyfile").read_text()
    assert "read_header {$GROUNDSWELL_FRONT_DOOR_HEADER_TIMEOUT:10s}" in text
    assert "idle {$GROUNDSWELL_FRONT_DOOR_IDLE_TIMEOUT:30s}" in text
    assert "read_body 30s" in text and "write " not in text.split("timeouts {")[1].split("}")[0]  # SSE streams write on
