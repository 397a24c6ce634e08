"""The deployment files, checked structurally against the code: compose, the rendered kustomize, the Dockerfile.

Fast and offline: YAML parsing, `kubectl kustomize` (no cluster) and `deploy/k8s/generate.py --check`.
"""

import re
import shutil
import subprocess
import sys
import typing
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from shared.settings import DEFAULT_PORTS, SERVICES, Settings
from shared.topics import ALL_TOPICS, EVENT_TOPICS, dead_letter_topic, retention_ms

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
# Names of variables whose value would be a secret; *_FILE(S) name a mounted file instead.
SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN$|KEYS?$|DATABASE_URL|KEYSTORE_URL|PRIVATE")


def _env_name(field: str) -> str:
    info = Settings.model_fields[field]
    alias = info.validation_alias
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else f"MARUGOTO_{field.upper()}"


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(a) for a in typing.get_args(annotation))


SETTING_NAMES = {_env_name(f) for f in Settings.model_fields}
SECRET_SETTINGS = {_env_name(f) for f, info in Settings.model_fields.items() if _is_secret(info.annotation)} | {
    "DATABASE_URL"  # holds the database password
}


def test_the_secret_settings_are_known() -> None:
    assert {
        "DATABASE_URL",
        "MARUGOTO_PERSONAL_DATA_KEYS",
        "MARUGOTO_PERSONAL_INDEX_KEY",
        "MARUGOTO_KAFKA_SASL_PASSWORD",
        "MARUGOTO_KAFKA_SSL_KEY_PASSWORD",
        "MARUGOTO_SERVICE_CLIENT_SECRET",
    } <= SECRET_SETTINGS
    assert all(SECRET_LOOKING.search(name) for name in SECRET_SETTINGS), "the pattern catches every secret setting"
    assert not SECRET_LOOKING.search("MARUGOTO_AUTH_PUBLIC_KEY_FILES")
    assert not SECRET_LOOKING.search("MARUGOTO_AUTH_TOKEN_TTL_S")


def _looks_secret(name: str) -> bool:
    return not name.endswith(("_FILE", "_FILES")) and bool(SECRET_LOOKING.search(name))


# ---------------------------------------------------------------------------------------------- compose


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_runs_every_service_from_one_image_with_health_checks_and_limits() -> None:
    services = _services()
    marugoto = {name: s for name, s in services.items() if s.get("image", "").startswith("marugoto")}
    assert set(SERVICES) <= set(marugoto)
    assert len({s["image"] for s in marugoto.values()}) == 1, "one image for every Marugoto container"
    assert all(s.get("build", {}).get("dockerfile") == "deploy/Dockerfile" for s in marugoto.values())
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["serve", name]
        test = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{DEFAULT_PORTS[name]}/readyz" in test, name
        resources = service["deploy"]["resources"]
        assert {"cpus", "memory"} <= set(resources["limits"]), name
        assert "memory" in resources["reservations"], name
        assert _environment(service)["MARUGOTO_HOST"] == "0.0.0.0"
        assert service["stop_grace_period"], "SIGTERM leaves time for the batch in hand to commit"
    for name, service in services.items():
        assert "limits" in service.get("deploy", {}).get("resources", {}), f"{name} has resource limits"


def test_compose_runs_migrations_and_topic_creation_before_the_services() -> None:
    services = _services()
    jobs = {tuple(s.get("command") or ()): name for name, s in services.items()}
    migrate, topics = jobs[("db", "upgrade")], jobs[("kafka", "create-topics")]
    for job in (migrate, topics):
        assert services[job]["restart"] == "no"
        assert services[job]["image"] == services["intake"]["image"]
    assert services[migrate]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert depends[migrate]["condition"] == "service_completed_successfully", name
        assert depends[topics]["condition"] == "service_completed_successfully", name


def test_compose_kafka_is_three_kraft_nodes_with_replication_3_and_min_isr_2() -> None:
    services = _services()
    brokers = {name: s for name, s in services.items() if s.get("image", "").startswith("apache/kafka:")}
    assert len(brokers) == 3
    node_ids = set()
    for name, broker in brokers.items():
        env = _environment(broker)
        node_ids.add(env["KAFKA_NODE_ID"])
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == str(REPLICATION_FACTOR)
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == str(MIN_INSYNC_REPLICAS)
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == str(REPLICATION_FACTOR)
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert "CLUSTER_ID" in env
        assert not broker.get("ports"), "Kafka is reachable on the compose network only (plaintext)"
    assert len(node_ids) == 3
    for name in [*SERVICES, "create-topics"]:
        env = _environment(services[name])
        assert env["MARUGOTO_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert env["MARUGOTO_KAFKA_REPLICATION_FACTOR"] == str(REPLICATION_FACTOR)
        assert env["MARUGOTO_KAFKA_MIN_INSYNC_REPLICAS"] == str(MIN_INSYNC_REPLICAS)
        assert {a.split(":")[0] for a in env["KAFKA_BOOTSTRAP_SERVERS"].split(",")} == set(brokers)


def test_compose_never_inlines_a_secret() -> None:
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/secrets/" in gitignore
    for name, service in _services().items():
        env = _environment(service)
        assert not {k for k in env if _looks_secret(k)}, f"{name} has a secret inline: use env_file or secrets"
        assert set(env) & SECRET_SETTINGS == set(), name
        for env_file in service.get("env_file") or []:
            assert str(env_file).startswith("./secrets/"), f"{name}: env files live in deploy/secrets/ (gitignored)"
        for variable, value in env.items():
            if variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), f"{name}: {variable} points at a compose secret"
    for secret in compose()["secrets"].values():
        assert set(secret) == {"file"} and secret["file"].startswith("./secrets/")
    assert "postgres_password" in _services()["postgres"]["secrets"]


def test_compose_and_kubernetes_name_only_real_settings() -> None:
    names = set()
    for service in _services().values():
        names |= {k for k in _environment(service) if k.startswith(("MARUGOTO_", "KAFKA_BOOTSTRAP", "DATABASE_URL"))}
    for document in render("production"):
        if document["kind"] == "ConfigMap":
            names |= set(document["data"])
        for container in _containers(document):
            names |= {e["name"] for e in container.get("env", [])}
    unknown = {n for n in names if n not in SETTING_NAMES}
    assert not unknown, f"not settings of shared/settings.py: {sorted(unknown)}"


def test_prometheus_scrapes_every_service() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        (job.get("metrics_path", "/metrics"), target)
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name in SERVICES:
        assert ("/metrics", f"{name}:{DEFAULT_PORTS[name]}") in targets
    mounted = " ".join(_services()["prometheus"]["volumes"])
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml" in mounted
    assert "./prometheus-alerts.yml:" in mounted


def test_alerts_use_metrics_the_code_exports() -> None:
    exported = set(re.findall(r'"(marugoto_[a-z_]+)"', (ROOT / "shared" / "observability.py").read_text()))
    exported |= {"marugoto_open_timers"}
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        for metric in re.findall(r"\bmarugoto_[a-z_]+", rule["expr"]):
            assert metric.removesuffix("_total") in exported, f"{rule['alert']}: {metric}"


# ------------------------------------------------------------------------------------------- kubernetes


@cache
def _render(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is not installed: the manifests are rendered with `kubectl kustomize` "
            "(our machines and CI have it; no cluster is needed)"
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize failed:\n{result.stderr}"
    return result.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_render(overlay)) if d]


def _of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["kind"] not in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        return []
    spec = document["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _service_deployments(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: d
        for name, d in _of_kind(documents, "Deployment").items()
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    }


@pytest.mark.parametrize("overlay", ["production", "dev"])
def test_every_service_has_probes_resources_and_the_same_image(overlay: str) -> None:
    documents = render(overlay)
    deployments = _service_deployments(documents)
    assert set(deployments) == {f"marugoto-{s}" for s in SERVICES}
    images = {c["image"] for d in documents for c in _containers(d)}
    assert len(images) == 1, f"one image for every container: {images}"
    for service in SERVICES:
        deployment = deployments[f"marugoto-{service}"]
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"] == ["serve", service]
        [port] = container["ports"]
        assert port["containerPort"] == DEFAULT_PORTS[service]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), f"{service} {bound}"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["terminationGracePeriodSeconds"] > Settings().kafka_graceful_timeout_s


def test_every_service_has_a_service_a_disruption_budget_and_an_autoscaler() -> None:
    documents = render("production")
    deployments = _service_deployments(documents)
    services, budgets, autoscalers = (
        _of_kind(documents, k) for k in ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler")
    )
    partitions = min(
        t["spec"]["partitions"]
        for t in _of_kind(documents, "KafkaTopic").values()
        if t["spec"]["topicName"] in EVENT_TOPICS
    )
    for name, deployment in deployments.items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= pod_labels.items()
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        target = autoscalers[name]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert 2 <= autoscalers[name]["spec"]["minReplicas"] <= autoscalers[name]["spec"]["maxReplicas"]
        assert autoscalers[name]["spec"]["maxReplicas"] <= partitions, "instances beyond the partitions sit idle"
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_overlays_differ_in_instances_and_resources() -> None:
    production, dev = render("production"), render("dev")

    def bounds(documents: list[dict[str, Any]]) -> set[tuple[int, int]]:
        return {
            (h["spec"]["minReplicas"], h["spec"]["maxReplicas"])
            for h in _of_kind(documents, "HorizontalPodAutoscaler").values()
        }

    def limits(documents: list[dict[str, Any]]) -> set[str]:
        return {
            d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            for d in _service_deployments(documents).values()
        }

    assert bounds(production) != bounds(dev)
    assert limits(production) != limits(dev)
    assert {d["metadata"].get("namespace") for d in production if d["kind"] != "Namespace"} == {"marugoto"}


def test_a_migration_job_runs_db_upgrade() -> None:
    jobs = _of_kind(render("production"), "Job")
    [job] = [j for j in jobs.values() if j["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]


def test_strimzi_kafka_is_kraft_with_three_nodes_replication_3_and_min_isr_2() -> None:
    documents = render("production")
    [kafka] = _of_kind(documents, "Kafka").values()
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == REPLICATION_FACTOR
    assert config["min.insync.replicas"] == MIN_INSYNC_REPLICAS
    assert config["auto.create.topics.enable"] is False
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    [pool] = _of_kind(documents, "KafkaNodePool").values()
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}


def test_every_topic_of_the_code_is_a_kafka_topic_with_partitions_and_replicas() -> None:
    documents = render("production")
    [kafka_name] = _of_kind(documents, "Kafka")
    topics = {t["spec"]["topicName"]: t for t in _of_kind(documents, "KafkaTopic").values()}
    assert set(topics) == set(ALL_TOPICS)
    assert {dead_letter_topic(t) for t in EVENT_TOPICS} <= set(topics)
    for name, topic in topics.items():
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka_name
        assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1, name
        assert spec["replicas"] == REPLICATION_FACTOR, name
        assert spec["config"]["min.insync.replicas"] == MIN_INSYNC_REPLICAS, name
        assert spec["config"]["retention.ms"] == retention_ms(name), name
        assert spec["config"]["cleanup.policy"] == "delete", name


def test_kafka_credentials_come_from_each_services_kafka_user() -> None:
    documents = render("production")
    users = _of_kind(documents, "KafkaUser")
    config = next(iter(_of_kind(documents, "ConfigMap").values()))["data"]
    assert config["MARUGOTO_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["MARUGOTO_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    for name, deployment in _of_kind(documents, "Deployment").items():
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        user = env["MARUGOTO_KAFKA_SASL_USERNAME"]["value"]
        assert users[user]["spec"]["authentication"]["type"] == "scram-sha-512"
        assert env["MARUGOTO_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": user, "key": "password"}, (
            name
        )


def _grants(acl: dict[str, Any], kind: str, name: str, operation: str) -> bool:
    resource = acl["resource"]
    if resource["type"] != kind or operation not in acl["operations"]:
        return False
    if resource["patternType"] == "prefix":
        return name.startswith(resource["name"])
    return bool(resource["name"] == name or resource["name"] == "*")


def _may(user: dict[str, Any], kind: str, name: str, operation: str) -> bool:
    """Kafka's rule: a matching deny wins over any matching allow."""
    acls = user["spec"]["authorization"]["acls"]
    matching = [acl for acl in acls if _grants(acl, kind, name, operation)]
    return bool(matching) and not any(acl.get("type") == "deny" for acl in matching)


def test_only_the_platforms_relay_reads_the_topics_that_carry_every_agencys_entries() -> None:
    users = _of_kind(render("production"), "KafkaUser")
    agencies = {
        agency["id"]
        for path in [ROOT / "shared" / "demo_directory.yaml", *(ROOT / "shared" / "scenarios").glob("*.yaml")]
        for agency in yaml.safe_load(path.read_text(encoding="utf-8")).get("agencies", [])
    }
    assert agencies, "the demo directory names agencies"
    # No agency (nor anything named after one) has a Kafka user: agencies read their own feed over HTTP.
    assert not {name.removeprefix("marugoto-") for name in users} & agencies
    for topic in ("marugoto.agency.feed", "marugoto.conference.invitation"):
        readers = {name for name, user in users.items() if _may(user, "topic", topic, "Read")}
        assert readers == {"marugoto-notifications"}, topic
    # Every service and the operator still read the event topics they need.
    for name in ["marugoto-router", "marugoto-intake", "marugoto-conference", "marugoto-metrics", "marugoto-operator"]:
        assert _may(users[name], "topic", "marugoto.routing.decided", "Read"), name


def test_no_secret_value_is_inlined_in_the_manifests() -> None:
    documents = render("production")
    assert not _of_kind(documents, "Secret"), "Secrets are created outside the manifests (secret.example.yaml)"
    example = [d for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text()) if d]
    documented = {d["metadata"]["name"]: set(d["stringData"]) for d in example}
    for secret in example:
        for key, value in secret["stringData"].items():
            assert value == "REPLACE_ME" or not _looks_secret(key.upper().replace("-", "_")), f"{key} is a placeholder"
    # Strimzi creates these: the cluster CA and one Secret per KafkaUser.
    made_by_strimzi = {"marugoto-cluster-ca-cert": {"ca.crt"}} | {
        u: {"password"} for u in _of_kind(documents, "KafkaUser")
    }
    known = documented | made_by_strimzi
    for key, value in next(iter(_of_kind(documents, "ConfigMap").values()))["data"].items():
        assert not _looks_secret(key), f"ConfigMap holds {key}={value}: make it a secretKeyRef"
    for document in documents:
        for container in _containers(document):
            for env in container.get("env", []):
                if _looks_secret(env["name"]) or env["name"] in SECRET_SETTINGS:
                    assert "value" not in env, f"{document['metadata']['name']}: {env['name']} is inlined"
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["key"] in known[ref["name"]], f"{ref} is not a documented Secret key"
        if document["kind"] in {"Deployment", "Job"}:
            for volume in document["spec"]["template"]["spec"].get("volumes", []):
                if "secret" in volume:
                    assert volume["secret"]["secretName"] in known, volume


def test_generated_manifests_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"run `.venv/bin/python deploy/k8s/generate.py`:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------------------------------- Dockerfile


def _stages() -> list[list[str]]:
    """The Dockerfile's stages as lists of instructions (continuation lines joined, comments dropped)."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [
        line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages: list[list[str]] = []
    for line in lines:
        line = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), line.strip())
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_non_root_without_build_tools() -> None:
    stages = _stages()
    assert len(stages) >= 2, "a builder stage and a final stage"
    builder, final = stages[0], stages[-1]
    assert any("pip wheel" in line for line in builder), "the builder builds the wheels"
    assert re.match(r"FROM python:3\.11-slim", final[0]), final[0]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the final stage sets a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    body = " ".join(final)
    assert not re.search(r"\b(apt-get|apt|apk|yum|dnf)\b[^&;]*\binstall\b", body), (
        "no packages installed in the final stage"
    )
    assert not re.search(r"\b(gcc|g\+\+|clang|build-essential|make|cc)\b", body), "no compilers in the final stage"
    assert "uninstall --yes setuptools pip" in body, "no build front-end left in the venv"
    assert not any(re.match(r"COPY (?!--from)", line) for line in final), "the final stage copies no source tree"
    assert 'ENTRYPOINT ["marugoto"]' in final
    assert 'CMD ["serve", "intake"]' in final


def test_the_image_installs_exactly_the_runtime_lock() -> None:
    builder, final = _stages()[0], _stages()[-1]
    wheels = [line for line in builder if "pip wheel" in line]
    assert wheels[0].endswith("pip wheel --wheel-dir /wheels --require-hashes -r requirements.lock"), (
        "the dependencies' wheels are the locked versions, checked against their hashes"
    )
    assert all("--no-deps" in line for line in wheels[1:]), "marugoto's own wheel brings no unlocked dependency"
    assert builder.index("COPY requirements.lock ./") < builder.index(wheels[0])
    [install] = [line for line in final if " install " in line]
    assert "install --no-index --find-links=/wheels marugoto" in install, "nothing but the locked wheels"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing enters the context unless named"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "requirements.lock", "README.md", "shared", "services"}
