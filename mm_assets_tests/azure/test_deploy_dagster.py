"""deploy/dagster and the DevOps pipeline: every file parsed and checked, without a cluster.

- dagster.yaml: validated by Dagster's own instance schema and by each configured class's config schema (the
  classes are imported: dagster-postgres, dagster-azure). The PostgreSQL-instance test runs it for real.
- helm/values.yaml: the Dagster chart is not available here, so it is validated against a JSON schema of our own
  (``HELM_VALUES_SCHEMA`` below) transcribed from the chart's values schema for version 1.13.x, for every key we
  set: unknown keys, wrong types and wrong enum values fail as `helm install` would. Then the instance the chart
  would write from it is compared with dagster.yaml, and the workload-identity wiring is checked.
- render_values.py: the installation's values, names validated.
- Dockerfile (+ its .dockerignore): parsed instruction by instruction.
- azure-pipelines.yml: the image and deploy stages.
- No secret anywhere in deploy/ or the docs.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = ROOT / "deploy" / "dagster"
INSTANCE = DAGSTER / "dagster.yaml"
VALUES = DAGSTER / "helm" / "values.yaml"
DOCKERFILE = DAGSTER / "Dockerfile"
PIPELINE = ROOT / "deploy" / "devops" / "azure-pipelines.yml"
WI_LABEL = "azure.workload.identity/use"

# ---- our own schema of the chart's keys we use (dagster chart 1.13.x) -----------------------------------------
_str = {"type": "string"}
_int = {"type": "integer"}
_bool = {"type": "boolean"}
_str_map = {"type": "object", "additionalProperties": {"type": "string"}}


def _obj(properties: dict, required: tuple = (), extra=False) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": extra}


IMAGE = _obj({"repository": _str, "tag": {"type": ["string", "integer", "null"]},
              "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}, ("repository", "pullPolicy"))
QUANTITIES = {"type": "object", "additionalProperties": {"type": ["string", "integer"]}}
RESOURCES = _obj({"requests": QUANTITIES, "limits": QUANTITIES})
CAPABILITIES = _obj({"add": {"type": "array", "items": _str}, "drop": {"type": "array", "items": _str}})
SECURITY_CONTEXT = _obj({"allowPrivilegeEscalation": _bool, "capabilities": CAPABILITIES, "privileged": _bool,
                         "readOnlyRootFilesystem": _bool, "runAsGroup": _int, "runAsNonRoot": _bool,
                         "runAsUser": _int, "seccompProfile": {"type": "object"}})
POD_SECURITY_CONTEXT = _obj({"fsGroup": _int, "runAsGroup": _int, "runAsNonRoot": _bool, "runAsUser": _int,
                             "seccompProfile": {"type": "object"}, "supplementalGroups": {"type": "array"}})
PROBE = _obj({"httpGet": _obj({"path": _str, "port": {"type": ["integer", "string"]}}, ("port",)),
              "exec": {"type": "object"}, "initialDelaySeconds": _int, "periodSeconds": _int,
              "timeoutSeconds": _int, "successThreshold": _int, "failureThreshold": _int, "enabled": _bool})
ENV_VAR = _obj({"name": _str, "value": _str, "valueFrom": {"type": "object"}}, ("name",))
ENV = {"oneOf": [{"type": "array", "items": ENV_VAR}, _str_map]}
NAMED = {"type": "array", "items": _obj({"name": _str}, ("name",))}
SOURCE = {"oneOf": [_str, _obj({"env": _str}, ("env",))]}  # the chart's StringSource
POD_COMMON = {"image": IMAGE, "env": ENV, "envConfigMaps": NAMED, "envSecrets": NAMED, "labels": _str_map,
              "deploymentLabels": _str_map, "annotations": _str_map, "nodeSelector": _str_map,
              "affinity": {"type": "object"}, "tolerations": {"type": "array"},
              "podSecurityContext": POD_SECURITY_CONTEXT, "securityContext": SECURITY_CONTEXT,
              "resources": RESOURCES, "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
              "schedulerName": _str, "volumeMounts": {"type": "array"}, "volumes": {"type": "array"}}

HELM_VALUES_SCHEMA = _obj({
    "global": _obj({"postgresqlSecretName": _str, "dagsterHome": _str, "serviceAccountName": _str,
                    "celeryConfigSecretName": _str, "dagsterInstanceConfigMap": _str,
                    "postgresqlAuthWifEnabled": _bool}),
    "serviceAccount": _obj({"create": _bool, "name": _str, "annotations": _str_map}),
    "generatePostgresqlPasswordSecret": _bool,
    "generateCeleryConfigSecret": _bool,
    "imagePullSecrets": NAMED,
    "postgresql": _obj({
        "enabled": _bool, "image": IMAGE, "postgresqlHost": _str, "postgresqlUsername": _str,
        "postgresqlPassword": _str, "postgresqlDatabase": _str, "postgresqlParams": {"type": "object"},
        "postgresqlScheme": _str, "service": _obj({"port": _int}),
        "authProvider": _obj({"type": {"enum": ["azure_wif", "gcp_wif", "aws_wif"]}, "azureScope": _str,
                              "awsRegion": _str}, ("type",)),
    }),
    "computeLogManager": {
        **_obj({"type": {"enum": ["NoOpComputeLogManager", "AzureBlobComputeLogManager", "GCSComputeLogManager",
                                  "S3ComputeLogManager", "CustomComputeLogManager"]},
                "config": _obj({"azureBlobComputeLogManager": _obj({
                    "storageAccount": SOURCE, "container": SOURCE, "secretKey": SOURCE,
                    "defaultAzureCredential": {"type": "object"}, "localDir": SOURCE, "prefix": SOURCE,
                    "uploadInterval": _int, "endpointSuffix": SOURCE, "showUrlOnly": _bool},
                    ("storageAccount", "container"))})}, ("type", "config")),
    },
    "scheduler": _obj({"type": {"enum": ["DagsterDaemonScheduler", "CustomScheduler"]},
                       "config": {"type": "object"}}, ("type",)),
    "runLauncher": _obj({
        "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
        "config": _obj({"k8sRunLauncher": _obj({
            "image": IMAGE, "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            "jobNamespace": {"type": ["string", "null"]}, "loadInclusterConfig": _bool,
            "kubeconfigFile": {"type": ["string", "null"]}, "envConfigMaps": NAMED, "envSecrets": NAMED,
            "envVars": {"type": "array", "items": _str}, "volumeMounts": {"type": "array"},
            "volumes": {"type": "array"}, "labels": _str_map, "failPodOnRunFailure": _bool,
            "resources": RESOURCES, "schedulerName": _str, "securityContext": SECURITY_CONTEXT,
            "runK8sConfig": _obj({"containerConfig": {"type": "object"}, "podSpecConfig": {"type": "object"},
                                  "podTemplateSpecMetadata": {"type": "object"},
                                  "jobSpecConfig": {"type": "object"}, "jobMetadata": {"type": "object"}}),
        })}),
    }, ("type", "config")),
    "dagsterWebserver": _obj({
        **POD_COMMON, "replicaCount": _int, "nameOverride": _str, "pathPrefix": {"type": ["string", "null"]},
        "service": _obj({"type": _str, "port": _int, "annotations": _str_map}, ("type", "port")),
        "workspace": {"type": "object"}, "enableReadOnly": _bool, "dbStatementTimeout": {"type": ["integer", "null"]},
        "dbPoolRecycle": {"type": ["integer", "null"]}, "logLevel": {"type": ["string", "null"]},
    }),
    "dagsterDaemon": _obj({
        **POD_COMMON, "enabled": _bool, "heartbeatTolerance": _int,
        "runCoordinator": _obj({
            "enabled": _bool, "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
            "config": _obj({"queuedRunCoordinator": _obj({
                "maxConcurrentRuns": _int, "dequeueIntervalSeconds": _int, "dequeueNumWorkers": _int,
                "dequeueUseThreads": _bool,
                "tagConcurrencyLimits": {"type": "array", "items": _obj(
                    {"key": _str, "value": {"type": ["string", "object"]}, "limit": _int}, ("key", "limit"))},
            })}),
        }, ("enabled", "type", "config")),
        "runMonitoring": _obj({"enabled": _bool, "startTimeoutSeconds": _int, "cancelTimeoutSeconds": _int,
                               "maxResumeRunAttempts": _int, "pollIntervalSeconds": _int,
                               "freeSlotsAfterRunEndSeconds": _int}),
        "runRetries": _obj({"enabled": _bool, "maxRetries": _int}),
        "sensors": {"type": "object"}, "schedules": {"type": "object"},
    }),
    "dagster-user-deployments": _obj({
        "enabled": _bool, "enableSubchart": _bool, "imagePullSecrets": NAMED,
        "deployments": {"type": "array", "minItems": 1, "items": _obj({
            **POD_COMMON, "name": _str, "dagsterApiGrpcArgs": {"type": "array", "items": _str},
            "codeServerArgs": {"type": "array", "items": _str}, "port": _int, "replicaCount": _int,
            "includeConfigInLaunchedRuns": _obj({"enabled": _bool}, ("enabled",)),
            "service": _obj({"annotations": _str_map}), "initContainers": {"type": "array"},
            "sidecarContainers": {"type": "array"},
        }, ("name", "image", "port"))},
    }),
    "migrate": _obj({"enabled": _bool}, ("enabled",)),
    "telemetry": _obj({"enabled": _bool}, ("enabled",)),
    "ingress": {"type": "object"}, "rabbitmq": {"type": "object"}, "redis": {"type": "object"},
    "flower": {"type": "object"}, "pythonLogs": {"type": "object"}, "busybox": {"type": "object"},
    "retention": {"type": "object"}, "additionalInstanceConfig": {"type": ["object", "null"]},
    "concurrency": {"type": "object"}, "nameOverride": _str, "fullnameOverride": _str, "rbacEnabled": _bool,
})


def _values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _instance() -> dict:
    return yaml.safe_load(INSTANCE.read_text())


# ---- dagster.yaml ---------------------------------------------------------------------------------------------
INSTANCE_ENV = {"DAGSTER_PG_HOST": "mm-assets-pg.postgres.database.azure.com", "DAGSTER_PG_USERNAME": "id-mm-assets",
                "DAGSTER_PG_DB": "dagster", "DAGSTER_COMPUTE_LOGS_ACCOUNT": "mmassetslogs",
                "DAGSTER_COMPUTE_LOGS_CONTAINER": "dagster-compute-logs"}


def test_instance_file_is_valid_dagster_instance_config(tmp_path, monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes.config_class import class_from_code_pointer

    for name, value in INSTANCE_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text(INSTANCE.read_text())
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    for key in ("run_storage", "event_log_storage", "schedule_storage", "compute_logs", "run_coordinator"):
        block = config[key]
        klass = class_from_code_pointer(block["module"], block["class"])
        result = process_config(klass.config_type(), block["config"])
        assert result.success, (key, [e.message for e in result.errors])
    storage = process_config(
        class_from_code_pointer("dagster_postgres.run_storage", "PostgresRunStorage").config_type(),
        config["run_storage"]["config"]).value
    assert storage["postgres_db"]["hostname"] == "mm-assets-pg.postgres.database.azure.com"
    assert storage["postgres_db"]["params"] == {"sslmode": "require"}
    assert storage["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert "password" not in _instance()["run_storage"]["config"]["postgres_db"]  # Entra token, not a password
    assert storage["auth_provider"] == {"azure_wif": {"scope": "https://ossrdbms-aad.database.windows.net/.default"}}


def test_instance_file_uses_postgres_for_everything_and_blob_compute_logs():
    config = _instance()
    assert {config[k]["module"] for k in ("run_storage", "event_log_storage", "schedule_storage")} == {
        "dagster_postgres.run_storage", "dagster_postgres.event_log", "dagster_postgres.schedule_storage"}
    assert config["run_storage"]["config"] == config["event_log_storage"]["config"] == \
        config["schedule_storage"]["config"]
    assert config["compute_logs"]["module"] == "dagster_azure.blob.compute_log_manager"
    assert config["compute_logs"]["class"] == "AzureBlobComputeLogManager"
    logs = config["compute_logs"]["config"]
    assert not {"access_key_or_sas_token", "secret_credential"} & set(logs)  # DefaultAzureCredential only
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] > 0
    assert config["run_monitoring"]["enabled"] is True
    assert "run_launcher" not in config  # the chart adds the K8sRunLauncher; here it would need a cluster


# ---- Helm values -----------------------------------------------------------------------------------------------
def test_helm_values_match_the_charts_keys():
    jsonschema.validate(_values(), HELM_VALUES_SCHEMA)


@pytest.mark.parametrize("mutation", [
    lambda v: v["dagsterWebserver"].update(replicas=2),  # a typo of replicaCount
    lambda v: v["runLauncher"].update(type="KubernetesRunLauncher"),
    lambda v: v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"].update(maxConcurrentRuns="6"),
    lambda v: v["computeLogManager"]["config"]["azureBlobComputeLogManager"].pop("container"),
    lambda v: v["dagster-user-deployments"]["deployments"][0]["image"].update(pullPolicy="Sometimes"),
    lambda v: v["postgresql"]["authProvider"].update(type="password"),
])
def test_the_schema_catches_what_helm_would_refuse(mutation):
    values = _values()
    mutation(values)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, HELM_VALUES_SCHEMA)


def instance_from_helm(values: dict) -> dict:
    """The dagster.yaml the chart writes from these values (templates/helpers/instance/*.tpl), minus the run
    launcher and scheduler: storage, compute logs, run queue, run monitoring and run retries."""
    pg = values["postgresql"]
    postgres = {"postgres_db": {"username": pg["postgresqlUsername"], "hostname": pg["postgresqlHost"],
                                "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
                                "params": pg["postgresqlParams"], "scheme": pg["postgresqlScheme"]}}
    if values["global"].get("postgresqlAuthWifEnabled"):
        assert pg["authProvider"]["type"] == "azure_wif"
        postgres["auth_provider"] = {"azure_wif": {"scope": pg["authProvider"]["azureScope"]}}
    else:
        postgres["postgres_db"]["password"] = {"env": "DAGSTER_PG_PASSWORD"}
    logs = values["computeLogManager"]["config"]["azureBlobComputeLogManager"]
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    retries = values["dagsterDaemon"]["runRetries"]
    return {
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": postgres},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": postgres},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": postgres},
        "compute_logs": {"module": "dagster_azure.blob.compute_log_manager", "class": "AzureBlobComputeLogManager",
                         "config": {"storage_account": logs["storageAccount"], "container": logs["container"],
                                    "prefix": logs["prefix"], "local_dir": logs["localDir"],
                                    "upload_interval": logs["uploadInterval"]}},
        "run_coordinator": {"class": "QueuedRunCoordinator",  # (the module path is the chart's business)
                            "config": {"max_concurrent_runs": queued["maxConcurrentRuns"],
                                       "tag_concurrency_limits": queued["tagConcurrencyLimits"]}},
        "run_monitoring": {"enabled": monitoring["enabled"],
                           "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                           "cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"],
                           "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
                           "poll_interval_seconds": monitoring["pollIntervalSeconds"]},
        "run_retries": {"enabled": retries["enabled"], "max_retries": retries["maxRetries"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def _with_env_resolved(config: dict) -> dict:
    """dagster.yaml with its `{env: NAME}` sources replaced by the names an installation puts there."""
    helm = _values()
    names = {"DAGSTER_PG_HOST": helm["postgresql"]["postgresqlHost"],
             "DAGSTER_PG_USERNAME": helm["postgresql"]["postgresqlUsername"],
             "DAGSTER_PG_DB": helm["postgresql"]["postgresqlDatabase"],
             "DAGSTER_COMPUTE_LOGS_ACCOUNT": helm["computeLogManager"]["config"]["azureBlobComputeLogManager"]
             ["storageAccount"],
             "DAGSTER_COMPUTE_LOGS_CONTAINER": helm["computeLogManager"]["config"]["azureBlobComputeLogManager"]
             ["container"]}

    def resolve(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                return names[node["env"]]
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(copy.deepcopy(config))


def test_helm_values_write_the_same_instance_as_dagster_yaml():
    instance = _with_env_resolved(_instance())
    assert instance["run_coordinator"].pop("module") == "dagster._core.run_coordinator"
    assert instance_from_helm(_values()) == instance


def test_every_pod_uses_the_workload_identity_and_no_secret_reaches_a_value():
    values = _values()
    assert values["global"]["serviceAccountName"] == values["serviceAccount"]["name"]
    assert values["serviceAccount"]["create"] is True
    assert re.fullmatch(r"[0-9a-f-]{36}", values["serviceAccount"]["annotations"]["azure.workload.identity/client-id"])
    deployment = values["dagster-user-deployments"]["deployments"][0]
    for labels in (values["dagsterWebserver"]["labels"], values["dagsterDaemon"]["labels"], deployment["labels"],
                   values["runLauncher"]["config"]["k8sRunLauncher"]["labels"]):
        assert labels[WI_LABEL] == "true"
    assert values["generatePostgresqlPasswordSecret"] is False and "postgresqlPassword" not in values["postgresql"]
    assert values["global"]["postgresqlAuthWifEnabled"] is True
    assert values["postgresql"]["enabled"] is False
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["enabled"] and values["dagsterWebserver"]["replicaCount"] >= 1
    # the code location: this project's definitions, the lake URI as the only Azure setting, databases by secret
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "mm_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["MM_ASSETS__STORAGE__LAKE"].startswith("abfs://lake@")
    assert not any(re.search(r"(?i)password|secret|key|://[^/@]*:[^/@]*@", v) for v in env.values())
    assert deployment["envSecrets"] == [{"name": "mm-assets-databases"}]
    # non-root everywhere, ports above 1024 for the non-root webserver
    for pod in (values["dagsterWebserver"], values["dagsterDaemon"], deployment):
        assert pod["podSecurityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["securityContext"]["runAsNonRoot"] is True
    assert values["dagsterWebserver"]["service"]["port"] > 1024
    assert values["dagsterWebserver"]["readinessProbe"]["httpGet"]["port"] == values["dagsterWebserver"]["service"]["port"]
    # the runner's process pool matches the run pods' CPU request
    cpu = values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]["requests"]["cpu"]
    assert env["MM_ASSETS__RUNNER__MAX_CONCURRENCY"] == str(cpu)
    # one image for all: the same repository and tag
    images = {(p["image"]["repository"], str(p["image"]["tag"]))
              for p in (values["dagsterWebserver"], values["dagsterDaemon"], deployment)}
    assert len(images) == 1


def test_render_values_fills_in_an_installation_and_refuses_bad_names():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_values", DAGSTER / "render_values.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = dict(registry="contosoacr", image_tag="3f2a9c1", client_id="11111111-2222-3333-4444-555555555555",
                 postgres_server="contoso-pg", lake_account="contosolake", logs_account="contosologs")
    rendered = module.render(_values(), **names)
    jsonschema.validate(rendered, HELM_VALUES_SCHEMA)
    deployment = rendered["dagster-user-deployments"]["deployments"][0]
    assert deployment["image"] == {"repository": "contosoacr.azurecr.io/mm-assets", "tag": "3f2a9c1",
                                   "pullPolicy": "IfNotPresent"}
    assert rendered["dagsterDaemon"]["image"] == rendered["dagsterWebserver"]["image"] == deployment["image"]
    assert {e["name"]: e["value"] for e in deployment["env"]}["MM_ASSETS__STORAGE__LAKE"] == \
        "abfs://lake@contosolake.dfs.core.windows.net/mm"
    assert rendered["postgresql"]["postgresqlHost"] == "contoso-pg.postgres.database.azure.com"
    assert rendered["serviceAccount"]["annotations"]["azure.workload.identity/client-id"] == names["client_id"]
    assert rendered["computeLogManager"]["config"]["azureBlobComputeLogManager"]["storageAccount"] == "contosologs"
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "mm_assets.definitions"]  # the rest of the entry is kept
    assert instance_from_helm(rendered)["run_coordinator"] == instance_from_helm(_values())["run_coordinator"]
    # an all-digit tag stays a string in the YAML Helm reads
    text = yaml.safe_dump(module.render(_values(), **{**names, "image_tag": "1234567"}))
    assert yaml.safe_load(text)["dagsterDaemon"]["image"]["tag"] == "1234567"
    for bad in (dict(lake_account="Contoso_Lake"), dict(client_id="not-a-guid"), dict(registry="a/b"),
                dict(image_tag="../x"), dict(postgres_server="pg.evil.com/x"), dict(lake_path="../escape")):
        with pytest.raises(ValueError):
            module.render(_values(), **{**names, **bad})


# ---- Dockerfile ------------------------------------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "dangling line continuation"
    out = []
    for line in logical:
        instruction, _, args = line.strip().partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def test_dockerfile_builds_the_code_location_as_a_non_root_user():
    steps = dockerfile_instructions(DOCKERFILE.read_text())
    known = {"FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "CMD", "ARG", "LABEL", "ENTRYPOINT"}
    assert {i for i, _ in steps} <= known
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", steps[0][1])  # pinned base
    assert [a for i, a in steps if i == "USER"] == ["10001"] and steps[-1][0] == "CMD"
    user_at = next(n for n, (i, _) in enumerate(steps) if i == "USER")
    assert all(i != "RUN" for i, _ in steps[user_at + 1:])
    installs = [a for i, a in steps if i == "RUN" and "pip install" in a]
    assert len(installs) == 1 and "-c constraints.txt" in installs[0] and "requirements-k8s.txt" in installs[0]
    for copied in (a for i, a in steps if i == "COPY"):
        sources = shlex.split(copied)[:-1]
        assert all((ROOT / s).exists() for s in sources), copied
        assert not any(s in (".", "./") or s.startswith(("data", ".venv", ".tools")) for s in sources)
    env = " ".join(a for i, a in steps if i in ("ENV", "ARG"))
    assert not re.search(r"(?i)password|secret|key|token|connection_string", env)
    cmd = yaml.safe_load(next(a for i, a in steps if i == "CMD"))
    assert cmd[:3] == ["dagster", "api", "grpc"] and cmd[-2:] == ["-m", "mm_assets.definitions"]
    assert "3030" in next(a for i, a in steps if i == "EXPOSE")
    ignore = (DAGSTER / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*"  # deny all, then allow what is copied


def test_image_requirements_pin_dagster_k8s_to_the_projects_dagster():
    pins = dict(line.split("==") for line in (DAGSTER / "requirements-k8s.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    dagster_version = re.search(r'"dagster-postgres==([\d.]+)"', pyproject).group(1)
    assert pins["dagster-k8s"] == dagster_version
    constraints = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                       if "==" in line and not line.startswith("#"))
    assert not {name for name in pins if name in constraints and constraints[name] != pins[name]}


# ---- the pipeline ----------------------------------------------------------------------------------------------
def test_pipeline_builds_the_image_then_deploys_with_the_values_and_no_secret():
    pipeline = yaml.safe_load(PIPELINE.read_text())
    stages = {s["stage"]: s for s in pipeline["stages"]}
    build = stages["image"]["jobs"][0]["steps"][0]
    assert build["task"] == "Docker@2" and build["inputs"]["command"] == "buildAndPush"
    assert build["inputs"]["Dockerfile"] == "deploy/dagster/Dockerfile"
    assert "$(Build.SourceVersion)" in build["inputs"]["tags"]
    assert "refs/heads/main" in stages["image"]["condition"]
    script = next(s for s in stages["deploy"]["jobs"][0]["steps"] if s.get("task") == "AzureCLI@2")
    inline = script["inputs"]["inlineScript"]
    assert "deploy/dagster/render_values.py" in inline and "--image-tag \"$(Build.SourceVersion)\"" in inline
    assert re.search(r"helm upgrade --install dagster dagster/dagster --version 1\.13\.27", inline)
    assert "--set" not in inline  # a --set on deployments[0] would replace the whole list
    assert not re.search(r"(?i)password|secret|AccountKey|sig=", PIPELINE.read_text().split("- stage: image")[1])


# ---- no secret in any file -------------------------------------------------------------------------------------
SECRET_PATTERNS = [
    re.compile(r"(?i)AccountKey=[A-Za-z0-9+/=]{20,}"),
    re.compile(r"(?i)SharedAccessSignature=|[?&]sig=[A-Za-z0-9%+/=]{10,}"),
    re.compile(r"(?i)\b(password|pwd|client_secret|secret_key|access_key_or_sas_token)\s*[:=]\s*['\"]?(?!\{?\s*env\b)"
               r"(?!\$\(|\$\{|<|\*\*\*|\"\$)[^\s'\"#]{6,}"),
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"$<*]{3,}@"),  # a password inside a URL
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]


def _scanned_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "mm_assets" / "local_instance.yaml", ROOT / "mm_assets.yaml", ROOT / "workspace.yaml"]
    files += list((ROOT / "docs").rglob("*.md"))  # the README's sections moved there
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    files += [p for p in (ROOT / "mm_assets").rglob("*.py")]
    return [p for p in files if p.exists() and "__pycache__" not in p.parts]


def test_no_secret_in_any_deploy_file_or_doc():
    found = []
    for path in _scanned_files():
        text = path.read_text(errors="replace")
        for pattern in SECRET_PATTERNS:
            for match in pattern.finditer(text):
                found.append(f"{path.relative_to(ROOT)}: {match.group(0)[:60]}")
    assert not found, found


def test_the_secret_scan_finds_secrets():
    samples = ["DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFyYmF6cXV4cXV1eHh4eHh4eA==;",
               "https://a.blob.core.windows.net/c?sv=2022-11-02&sig=Zm9vYmFyYmF6cXV4",
               "password: hunter2hunter2", "postgresql+psycopg2://user:s3cretpw@host/db"]
    for sample in samples:
        assert any(p.search(sample) for p in SECRET_PATTERNS), sample
    for fine in ["password: {env: DAGSTER_PG_PASSWORD}", "postgresql+psycopg2://user@host/db",
                 "--password-auth Disabled", "postgresql+psycopg2://reader@db/sales"]:
        assert not any(p.search(fine) for p in SECRET_PATTERNS), fine


def test_deploy_readme_takes_a_user_from_a_subscription_to_a_running_schedule():
    text = (ROOT / "deploy" / "README.md").read_text()
    for command in ("az group create", "az acr create", "az storage account create", "az aks create",
                    "az identity create", "az identity federated-credential create",
                    "az postgres flexible-server create", "az role assignment create", "az acr build",
                    "kubectl create namespace", "create secret generic mm-assets-databases",
                    "helm repo add dagster", "helm upgrade --install dagster dagster/dagster --version 1.13.27",
                    "deploy/dagster/render_values.py", "ingest_schedule"):
        assert command in text, command
    for role in ("Storage Blob Data Contributor", "Storage Blob Delegator", "AcrPush", "AcrPull",
                 "Azure Kubernetes Service RBAC Admin"):
        assert role in text, role
