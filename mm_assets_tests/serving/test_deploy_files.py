"""The Azure ML online-endpoint files load and validate offline with the SDK's own loaders.

Runs in the main environment (azure-ai-ml is part of it, not of the serving image), so it is not marked
``serving``. Nothing here talks to Azure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mm_assets.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
ONLINE = REPO / "deploy" / "azureml" / "online"

# the SDK's schemas trigger hundreds of marshmallow deprecation warnings on load: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::Warning:marshmallow.*", "ignore::Warning:azure.ai.ml.*")


def test_endpoint_yaml_validates_with_the_sdk_loader():
    from azure.ai.ml import load_online_endpoint
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    endpoint = load_online_endpoint(ONLINE / "endpoint.yml")
    assert isinstance(endpoint, ManagedOnlineEndpoint)
    assert endpoint.name == "mm-assets-forecast" and endpoint.auth_mode == "key"
    assert endpoint.identity.type == "system_assigned"


def test_deployment_yaml_validates_with_the_sdk_loader():
    from azure.ai.ml import load_online_deployment
    from azure.ai.ml.entities import ManagedOnlineDeployment

    deployment = load_online_deployment(ONLINE / "deployment.yml")
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert deployment.endpoint_name == "mm-assets-forecast" and deployment.instance_type
    assert deployment.request_settings.request_timeout_ms > 0
    assert deployment.request_settings.max_concurrent_requests_per_instance >= 1
    for probe in (deployment.liveness_probe, deployment.readiness_probe):
        assert probe.period and probe.timeout and probe.failure_threshold and probe.initial_delay is not None
    # the scoring script and the model folder it names exist where the deployment says
    code = (ONLINE / deployment.code_configuration.code).resolve()
    assert code == REPO / "mm_assets"
    assert (code / deployment.code_configuration.scoring_script) == REPO / "mm_assets" / "serving" / "score.py"
    model_dir = Path(deployment.model.path)
    assert model_dir.is_dir() and (model_dir / "mm_assets.yaml").is_file()
    assert deployment.environment.image and deployment.environment.conda_file
    variables = deployment.environment_variables
    assert {"WORKER_COUNT", "MM_ASSETS_SERVING_CACHE_MODELS", "MM_ASSETS_SERVING_CACHE_BYTES"} <= set(variables)


def test_the_deployed_settings_file_is_valid():
    settings = load_settings(ONLINE / "model" / "mm_assets.yaml", environ={})
    assert settings.storage.lake.startswith("abfs://") and settings.columns.ids == ["store", "item"]


def test_the_azure_environment_pins_match_requirements_serve():
    requirements = [line.strip() for line in (REPO / "requirements-serve.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    conda = yaml.safe_load((ONLINE / "environment" / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(requirements)
    assert "python=3.11" in conda["dependencies"]
    assert all("==" in line for line in requirements)
    names = {line.split("==")[0].lower() for line in requirements}
    assert "azureml-inference-server-http" in names and not names & {"dagster", "dagster-azure", "prophet"}
