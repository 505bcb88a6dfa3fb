"""deploy/: what an operator runs, checked without a cluster or a Docker engine.

Every Kubernetes object is validated against the API's own schemas (kubernetes-validate,
offline, strict: a misspelt field is an error, not silently dropped), then the properties
production depends on are asserted one by one: probes on the right paths and ports, a worker
grace that covers its shutdown, unprivileged containers with resource requests, commands the
`homework` CLI really has, selectors that select, and setting names that Settings knows.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from app.cli import main
from app.core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
# The newest Kubernetes whose schemas the locked kubernetes-validate (1.37.0) ships.
KUBERNETES_VERSION = "1.37"
# Named in deploy/ ahead of the part of issue 16 that adds it (the worker's health port);
# every other HOMEWORK_* name must be a field of Settings.
# Files deliberately left out of kustomization.yaml (each says why in its header).
NOT_IN_KUSTOMIZATION = frozenset({"kustomization.yaml", "secret.template.yaml", "migrate-job.yaml"})
API = {"app.kubernetes.io/name": "homework", "app.kubernetes.io/component": "api"}


@cache
def _manifests() -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple(
        (path.name, doc)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    )


def _objects(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _manifests() if doc["kind"] == kind]


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in _objects(kind) if doc["metadata"]["name"] == name]
    return found


def _workloads() -> list[dict[str, Any]]:
    return _objects("Deployment") + _objects("Job")


def _containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, its pod spec, one of its containers) for every container."""
    return [
        (workload["metadata"]["name"], pod, container)
        for workload in _workloads()
        for pod in [workload["spec"]["template"]["spec"]]
        for container in pod["containers"] + pod.get("initContainers", [])
    ]


def _container(workload: str) -> dict[str, Any]:
    (found,) = [c for name, _, c in _containers() if name == workload]
    return found


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p["name"] == port]
    return int(number)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def _configmap() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap", "homework-config")["data"]
    return data


def _effective(setting: str, container: dict[str, Any]) -> float:
    """A numeric setting as the container sees it: its env, else the ConfigMap, else the
    default in app.core.config.Settings (so the test follows the code if a default moves)."""
    field = setting.removeprefix("HOMEWORK_").lower()
    value = Settings.model_fields[field].default
    value = _configmap().get(setting, value)
    return float(_env(container).get(setting, value))


@pytest.mark.parametrize(
    "name, doc",
    [(name, doc) for name, doc in _manifests() if doc["kind"] != "Kustomization"],
    ids=lambda value: value if isinstance(value, str) else value["metadata"]["name"],
)
def test_every_manifest_validates_against_the_kubernetes_schemas(
    name: str, doc: dict[str, Any]
) -> None:
    assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


def test_strict_validation_refuses_a_misspelt_field() -> None:
    """What the test above is worth: a probe under a wrong key would otherwise be ignored."""
    broken = copy.deepcopy(_one("Deployment", "homework-api"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_api_is_ready_on_readyz_and_alive_on_healthz_of_its_port() -> None:
    api = _container("homework-api")
    probes = {kind: api[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    # Liveness must not depend on the database: an outage would restart every pod.
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in [*probes.values(), api["startupProbe"]["httpGet"]]:
        assert _port_number(api, probe["port"]) == 8000
    assert "--no-migrate" in api["args"]


def test_worker_is_alive_on_the_healthz_of_its_own_port() -> None:
    worker = _container("homework-worker")
    probe = worker["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert _port_number(worker, probe["port"]) == int(_env(worker)["HOMEWORK_WORKER_PORT"])
    assert "readinessProbe" not in worker  # it takes no traffic


def test_worker_termination_grace_covers_its_shutdown() -> None:
    """The grace for attempts in flight, one attempt's deadline and a slow database's pool wait
    (worker-deployment.yaml's comment), from the settings as the worker pod sees them."""
    deployment = _one("Deployment", "homework-worker")
    worker = _container("homework-worker")
    needed = sum(
        _effective(setting, worker)
        for setting in (
            "HOMEWORK_WORKER_SHUTDOWN_GRACE_SECONDS",
            "HOMEWORK_WEBHOOK_TIMEOUT_SECONDS",
            "HOMEWORK_DB_POOL_TIMEOUT_SECONDS",
        )
    )
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= needed


@pytest.mark.parametrize("workload", [name for name, _, _ in _containers()])
def test_every_container_is_unprivileged_and_sized(workload: str) -> None:
    ((pod, container),) = [(p, c) for name, p, c in _containers() if name == workload]
    pod_context, context = pod["securityContext"], container["securityContext"]
    assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
    assert context.get("runAsUser", pod_context.get("runAsUser")) == 10001  # the image's user
    seccomp = context.get("seccompProfile", pod_context.get("seccompProfile"))
    assert seccomp == {"type": "RuntimeDefault"}
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # merges the `<<:` anchors
    return compose


def _commands() -> list[tuple[str, list[str]]]:
    """Every homework command line in deploy/: the containers' and Compose's services'."""
    commands = [
        (f"kubernetes {name}", [*container["command"], *container.get("args", [])])
        for name, _, container in _containers()
    ]
    services = _compose()["services"]
    commands += [
        (f"compose {name}", service["command"])
        for name, service in services.items()
        if service.get("image", "").startswith("homework-api")
    ]
    return commands


@pytest.mark.parametrize("where, command", _commands(), ids=[where for where, _ in _commands()])
def test_every_command_is_a_real_homework_subcommand(where: str, command: list[str]) -> None:
    """Click parses every option before --help answers, so a wrong subcommand or option fails
    here as it would in the pod, without running anything."""
    assert command[0] == "homework"
    leaf: click.Command = main
    for arg in command[1:]:
        if not isinstance(leaf, click.Group) or arg not in leaf.commands:
            break
        leaf = leaf.commands[arg]
    assert not isinstance(leaf, click.Group), f"{command} stops at a group, which prints help"
    result = CliRunner().invoke(main, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_a_wrong_option_fails_the_command_check() -> None:
    result = CliRunner().invoke(main, ["serve", "--no-migrations", "--help"])
    assert result.exit_code != 0


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_selectors_select_the_pods_they_mean() -> None:
    pods = {
        deployment["metadata"]["name"]: deployment["spec"]["template"]["metadata"]["labels"]
        for deployment in _objects("Deployment")
    }
    for deployment in _objects("Deployment"):
        name = deployment["metadata"]["name"]
        assert _selects(deployment["spec"]["selector"]["matchLabels"], pods[name])
    budgets = {pdb["metadata"]["name"]: pdb for pdb in _objects("PodDisruptionBudget")}
    assert set(budgets) == set(pods)  # one budget per Deployment
    for name, pdb in budgets.items():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert [pod for pod, labels in pods.items() if _selects(selector, labels)] == [name]
    service = _one("Service", "homework-api")["spec"]
    assert service["selector"] == API
    assert [pod for pod, labels in pods.items() if _selects(service["selector"], labels)] == [
        "homework-api"
    ]


def test_service_sends_port_80_and_metrics_to_the_api_port() -> None:
    api = _container("homework-api")
    ports = {port["name"]: port for port in _one("Service", "homework-api")["spec"]["ports"]}
    assert ports["http"]["port"] == 80
    assert _port_number(api, ports["http"]["targetPort"]) == 8000
    assert _port_number(api, ports["metrics"]["targetPort"]) == 8000


@pytest.mark.parametrize("workload, port", [("homework-api", 8000), ("homework-worker", 8001)])
def test_pods_are_scraped_on_their_metrics_port(workload: str, port: int) -> None:
    annotations = _one("Deployment", workload)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port
    assert port in [p["containerPort"] for p in _container(workload)["ports"]]


def test_secret_template_holds_placeholders_only_and_is_never_applied() -> None:
    for name, value in _one("Secret", "homework-secrets")["stringData"].items():
        assert value == "" or "REPLACE_ME" in value, name
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    applied = {path.name for path in KUBERNETES.glob("*.yaml")} - NOT_IN_KUSTOMIZATION
    assert sorted(kustomization["resources"]) == sorted(applied)  # no manifest forgotten


def _setting_names() -> dict[str, set[str]]:
    """Every HOMEWORK_* name deploy/ sets, by where it is set."""
    names: dict[str, set[str]] = {}

    def add(where: str, keys: object) -> None:
        names.setdefault(where, set()).update(
            key for key in keys if isinstance(key, str) and key.startswith("HOMEWORK_")
        )

    add("ConfigMap", _configmap())
    add("Secret template", _one("Secret", "homework-secrets")["stringData"])
    for name, _, container in _containers():
        add(f"{name} env", _env(container))
    for name, service in _compose()["services"].items():
        add(f"compose {name}", service.get("environment", {}))
    add(".env.example", re.findall(r"^#? ?(HOMEWORK_\w+)=", ENV_EXAMPLE.read_text(), re.M))
    return names


def test_every_setting_named_is_a_setting() -> None:
    """A misspelt HOMEWORK_ variable is ignored by Settings (extra="ignore"), silently."""
    known = {f"HOMEWORK_{field.upper()}" for field in Settings.model_fields}
    unknown = {where: sorted(names - known) for where, names in _setting_names().items()}
    assert {where: names for where, names in unknown.items() if names} == {}


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _docker_compose_works(),
    reason="no `docker compose` here (no docker CLI or no compose plugin); "
    "test_compose_structure checks the file's structure instead",
)
def test_docker_compose_accepts_the_file() -> None:
    # With the placeholders of .env.example: they must satisfy every ${VAR:?} in the file.
    command = ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE)]
    result = subprocess.run([*command, "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _healthcheck_url(service: dict[str, Any]) -> str:
    (url,) = re.findall(r"http://127\.0\.0\.1:\d+/\w+", " ".join(service["healthcheck"]["test"]))
    return str(url)


def test_compose_structure() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker", "redis"}

    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    (volume,) = postgres["volumes"]
    assert volume.split(":")[0] in compose["volumes"]  # a named volume, not a bind mount

    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        migrated = {"migrate": {"condition": "service_completed_successfully"}}
        assert services[name]["depends_on"] == migrated
    assert "--no-migrate" in services["api"]["command"]
    assert _healthcheck_url(services["api"]) == "http://127.0.0.1:8000/healthz"
    worker = services["worker"]
    # `homework worker --check` asks the probe on HOMEWORK_WORKER_PORT.
    assert worker["environment"]["HOMEWORK_WORKER_PORT"]
    assert worker["healthcheck"]["test"] == ["CMD", "homework", "worker", "--check"]

    assert services["redis"]["profiles"] == ["shared-limits"]
    for name in ("migrate", "api", "worker"):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            ROOT / "Dockerfile"
        )
        assert services[name]["environment"]["HOMEWORK_ENV"] == "production"


def test_env_example_fills_every_value_compose_requires() -> None:
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    required = set(re.findall(r"\$\{(\w+):\?", "\n".join(lines)))
    assert required  # the secrets are required, not defaulted
    given = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert required <= given


def test_dockerfile_healthcheck_is_liveness() -> None:
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*\n.*$", (ROOT / "Dockerfile").read_text(), re.M)
    assert "/healthz" in healthcheck
    assert "/readyz" not in healthcheck


def test_the_root_env_example_documents_every_setting() -> None:
    """.env.example is where a deployer reads what can be set: a new setting goes there too."""
    documented = set(re.findall(r"^#? ?(HOMEWORK_\w+)=", (ROOT / ".env.example").read_text(), re.M))
    settings = {f"HOMEWORK_{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - documented) == []
    assert sorted(documented - settings) == []
