"""docker-compose.yaml, its Dockerfile and .env.example, checked as files: Docker does not run in CI.

What `docker compose up` would otherwise find first: a service that is named but not defined, an image
of another Airflow version than the one the tests ran, a connection the DAG needs but the stack lacks,
a mount of a folder that is not in the repo.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import tomllib
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
NAMES_FILE = REPO / "plugins" / "batch_cleanup" / "names.py"

AIRFLOW_SERVICES = (
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker",
)  # fmt: skip
STAND_INS = ("firestore-emulator", "coordinator", "slack-sink")
REQUIRED_SERVICES = (*AIRFLOW_SERVICES, "postgres", "redis", *STAND_INS)
# One-shot: it exits once the database is migrated, so it has nothing to report health for.
ONE_SHOT_SERVICES = ("airflow-init",)

# The connection type each of the DAG's connections must have for its hook.
CONN_TYPES = {
    "prediction_coordinator": "http",
    "google_cloud_default": "google_cloud_platform",
    "slack_daily_orchestration": "slackwebhook",
}

# Mounted folders that are not in the repo, and why that is fine. Each must be git-ignored.
RUNTIME_MOUNTS = {
    "./logs": "task logs, written at run time; Docker creates it, airflow-init hands it to AIRFLOW_UID"
}

# Environment values that name a host as a browser on the developer's machine sees it, not a service.
HOST_SIDE_SETTINGS = {"AIRFLOW__API__BASE_URL"}


COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE.get("services") or {}


def _pinned_airflow_version() -> str:
    pins = re.findall(r"^apache-airflow==(\S+)", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert len(pins) == 1, f"requirements.txt should pin apache-airflow exactly once, found {pins}"
    return pins[0]


def _env_example() -> dict[str, str]:
    """KEY=VALUE lines as Compose reads them; single or double quotes around a value are removed."""
    values = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example line {number} is not KEY=VALUE: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _connection(conn_id: str) -> dict[str, Any]:
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    value = _env_example().get(key)
    assert value is not None, f".env.example does not define {key}, which the DAG's {conn_id!r} needs"
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise AssertionError(f"{key} in .env.example is not the JSON form of a connection: {err}") from None


def _dag_conn_ids() -> list[str]:
    """Values of the module-level `*_CONN_ID` constants of `batch_cleanup/names.py` (the one home of
    the DAG's connection ids), read without importing Airflow."""
    tree = ast.parse(NAMES_FILE.read_text())
    return sorted(
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id.endswith("_CONN_ID") for t in node.targets)
        and isinstance(node.value, ast.Constant)
    )


def _env_of(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(port).split("/")[0]) for port in service.get("expose") or []}
    ports |= {int(str(port).split(":")[-1].split("/")[0]) for port in service.get("ports") or []}
    return ports


def _published_host_ports(service: dict[str, Any]) -> list[int]:
    return [int(str(port).split(":")[-2]) for port in service.get("ports") or [] if ":" in str(port)]


def _mounts() -> list[tuple[str, str, bool]]:
    """(service, source, is a bind mount) of every volume: bind mounts name paths, named volumes not."""
    sources = [(n, v.split(":")[0]) for n, s in SERVICES.items() for v in s.get("volumes") or []]
    return [(name, source, source.startswith((".", "/", "~"))) for name, source in sources]


def _git_ignored(path: str) -> bool:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, capture_output=True, check=False
    )
    assert result.returncode in (0, 1), f"git check-ignore failed: {result.stderr.decode()}"
    return result.returncode == 0


def _without_defaults(value: str) -> str:
    """`${NAME:-default}` as Compose reads it when NAME is unset."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)


def _urls_services_must_serve() -> list[tuple[str, str]]:
    """(where, URL) of every address an Airflow container or connection reaches inside the stack."""
    urls = []
    for name in AIRFLOW_SERVICES:
        for key, value in _env_of(SERVICES.get(name, {})).items():
            if key in HOST_SIDE_SETTINGS:
                continue
            if key == "FIRESTORE_EMULATOR_HOST":
                urls.append((f"{name}: {key}", f"//{value}"))
            elif "://" in value:
                urls.append((f"{name}: {key}", value))
    for conn_id in CONN_TYPES:
        try:
            connection = _connection(conn_id)
        except AssertionError:
            continue  # test_env_example_defines_the_connection reports it.
        for field in ("host", "password"):
            if "://" in str(connection.get(field, "")):
                urls.append((f".env.example: {conn_id}.{field}", connection[field]))
    return sorted(set(urls))


def test_compose_file_parses_with_every_anchor_merged():
    assert isinstance(COMPOSE, dict) and SERVICES, "docker-compose.yaml should be a mapping with `services`"

    def unmerged(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            found = [path] if "<<" in node else []
            return found + [p for k, v in node.items() for p in unmerged(v, f"{path}.{k}")]
        if isinstance(node, list):
            return [p for i, v in enumerate(node) for p in unmerged(v, f"{path}[{i}]")]
        return []

    assert unmerged(COMPOSE, "compose") == [], "a `<<` merge key was left unresolved (quoted or not an alias)"


def test_every_required_service_is_defined():
    assert [n for n in REQUIRED_SERVICES if n not in SERVICES] == [], sorted(SERVICES)


@pytest.mark.parametrize("name", sorted(set(SERVICES) - set(ONE_SHOT_SERVICES)))
def test_long_running_service_has_a_health_check(name):
    assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck.test"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_names_defined_services_that_can_meet_the_condition(name):
    depends_on = SERVICES[name].get("depends_on") or {}
    if isinstance(depends_on, list):
        depends_on = {target: {} for target in depends_on}
    for target, spec in depends_on.items():
        assert target in SERVICES, f"{name} depends on {target!r}, which is not a service"
        if (spec or {}).get("condition") == "service_healthy":
            assert SERVICES[target].get("healthcheck"), f"{name} waits for {target}, which cannot be healthy"


@pytest.mark.parametrize(("where", "url"), _urls_services_must_serve())
def test_address_names_a_service_listening_on_that_port(where, url):
    parts = urlsplit(url)
    assert parts.hostname in SERVICES, f"{where} points at {parts.hostname!r}, which is not a service"
    if parts.port is not None:
        ports = _container_ports(SERVICES[parts.hostname])
        assert parts.port in ports, f"{where}: {parts.hostname} exposes or publishes no such port"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_is_built_from_the_dockerfile_reads_env_and_loads_no_examples(name):
    service = SERVICES.get(name, {})
    context = service.get("build")
    assert context is not None, f"{name} is not built from the Dockerfile (no `build`)"
    assert (REPO / context / "Dockerfile").is_file(), f"{name} builds from {context!r}: no Dockerfile"
    files = service.get("env_file") or []
    assert ".env" in files, f"{name} does not read .env (env_file: {files}): it would lack the connections"
    examples = _env_of(service).get("AIRFLOW__CORE__LOAD_EXAMPLES")
    assert str(examples).lower() == "false", f"{name}: Airflow's default loads the example DAGs"


def test_nothing_is_pip_installed_at_container_start():
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_FILE.read_text(), "use requirements.txt"


def test_dockerfile_builds_from_the_pinned_airflow_on_the_projects_python():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    python = re.search(r">=\s*(\d+\.\d+)", requires)
    assert python, f"pyproject.toml's requires-python {requires!r} names no minimum Python"
    expected = f"apache/airflow:{_pinned_airflow_version()}-python{python[1]}"
    # One FROM; an image without -pythonX.Y picks the image's default Python, which the lock may not be for.
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert froms == [expected], "requirements.txt's Airflow and pyproject.toml's Python"


def test_compose_names_no_other_airflow_version():
    pinned = _pinned_airflow_version()
    for name, service in SERVICES.items():
        image = _without_defaults(str(service.get("image", "")))
        if image.startswith("apache/airflow:"):
            version = image.partition(":")[2].split("-")[0]
            assert version == pinned, f"{name} runs apache/airflow {version}, requirements.txt pins {pinned}"


def test_dockerfile_installs_requirements_txt():
    text = DOCKERFILE.read_text()
    assert re.search(r"^COPY\s+requirements\.txt\s", text, re.MULTILINE), "no COPY requirements.txt"
    assert re.search(r"pip install\b.*\s-r\s+\S*requirements\.txt", text), "no pip install -r"


def test_build_context_holds_only_what_the_dockerfile_copies():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[:1] == ["*"], ".dockerignore should start by excluding everything (`*`): .env is a secret"
    copied = re.findall(r"^COPY\s+(\S+)\s", DOCKERFILE.read_text(), re.MULTILINE)
    assert sorted(p[1:] for p in patterns[1:] if p.startswith("!")) == sorted(copied), "what COPY takes"


def test_the_dag_uses_the_connections_this_file_expects():
    assert _dag_conn_ids() == sorted(CONN_TYPES), "update CONN_TYPES here and .env.example"


@pytest.mark.parametrize("conn_id", sorted(CONN_TYPES))
def test_env_example_defines_the_connection(conn_id):
    connection = _connection(conn_id)
    assert connection.get("conn_type") == CONN_TYPES[conn_id], f"{conn_id}: the type its hook needs"


def test_connections_come_only_from_the_env_file():
    inline = sorted(
        f"{name}: {key}"
        for name, service in SERVICES.items()
        for key in _env_of(service)
        if key.startswith("AIRFLOW_CONN_")
    )
    assert inline == [], f"connections set in docker-compose.yaml would override .env: {inline}"


def test_coordinator_accepts_the_key_of_the_connection():
    password = _connection("prediction_coordinator").get("password")
    assert _env_example().get("COORDINATOR_API_KEY") == password, ".env.example: key ≠ the connection's"
    key = _env_of(SERVICES.get("coordinator", {})).get("COORDINATOR_API_KEY", "")
    assert key.startswith("${COORDINATOR_API_KEY"), "the coordinator must take its key from .env"


def test_no_secret_is_on_a_command_line():
    # Every user of the host sees command lines in `ps`; environments stay private to the owner.
    for name, service in SERVICES.items():
        command = service.get("command") or []
        command = " ".join(command) if isinstance(command, list) else str(command)
        assert not re.search(r"API_KEY|SECRET|PASSWORD", command, re.IGNORECASE), f"{name}: {command!r}"


def test_env_file_is_git_ignored_and_its_example_is_not():
    assert _git_ignored(".env"), ".env holds secrets but is not git-ignored"
    assert not _git_ignored(".env.example"), ".env.example is git-ignored, so it would never be committed"


@pytest.mark.parametrize(("name", "source"), [(n, s) for n, s, bind in _mounts() if bind])
def test_mounted_folder_is_in_the_repo(name, source):
    if source in RUNTIME_MOUNTS:
        assert _git_ignored(source.rstrip("/") + "/"), f"{source} is made at run time: git-ignore it"
        return
    assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repo"


@pytest.mark.parametrize("name", [n for n in STAND_INS if "-m" in (SERVICES.get(n, {}).get("command") or [])])
def test_stand_in_module_is_in_the_mounted_folder(name):
    service = SERVICES[name]
    command = service["command"]
    module = command[command.index("-m") + 1]
    in_container = PurePosixPath(service.get("working_dir", "/"), *module.split("."))
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if in_container.is_relative_to(target):
            path = REPO / source / in_container.relative_to(target)
            break
    else:
        pytest.fail(f"{name} runs `python -m {module}` from {in_container}, which no bind mount provides")
    assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), f"{name}: no {module}"


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if "image" in s and "build" not in s))
def test_pulled_image_has_a_fixed_tag(name):
    image = SERVICES[name]["image"]
    tag = image.rpartition(":")[2] if ":" in image.rsplit("/", 1)[-1] else ""
    assert tag and tag != "latest", f"{name} pulls {image!r}: name a version so every machine runs the same"


def test_firestore_emulator_is_pinned_to_a_gcloud_release():
    image = SERVICES.get("firestore-emulator", {}).get("image", "")
    pattern = r"gcr\.io/google\.com/cloudsdktool/google-cloud-cli:\d+\.\d+\.\d+-emulators"
    assert re.fullmatch(pattern, image), "google-cloud-cli:<release>-emulators"


def test_published_host_ports_do_not_collide():
    published = sorted(port for service in SERVICES.values() for port in _published_host_ports(service))
    assert len(published) == len(set(published)), f"two services publish the same host port: {published}"


def test_named_volumes_are_declared():
    declared = set(COMPOSE.get("volumes") or {})
    undeclared = sorted({source for _, source, bind in _mounts() if not bind and source not in declared})
    assert undeclared == [], f"named volumes used but not declared under `volumes:`: {undeclared}"
