"""Write the Helm values of one installation: deploy/dagster/helm/values.yaml with its example names replaced.

    python3 deploy/dagster/render_values.py --registry mmassetsacr --image-tag "$(git rev-parse HEAD)" \
        --client-id <id-mm-assets client id> --postgres-server mm-assets-pg --lake-account mmassetslake \
        --logs-account mmassetslogs > values.install.yaml
    helm upgrade --install dagster dagster/dagster --version 1.13.27 -n dagster -f values.install.yaml

Why a script and not `helm --set`: a `--set` on a list element (the code location is `deployments[0]`) replaces
the whole list, silently dropping the rest of the entry. Every value is checked against Azure's naming rules
before it is written, so a typo fails here rather than in a pod. Only names go in: nothing secret.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

VALUES = Path(__file__).resolve().parent / "helm" / "values.yaml"

RULES = {
    "registry": (r"[a-zA-Z0-9]{5,50}", "5-50 letters and digits (the ACR name, without .azurecr.io)"),
    "image_tag": (r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "a Docker tag (e.g. the commit SHA)"),
    "client_id": (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                  "a GUID (az identity show --query clientId)"),
    "postgres_server": (r"[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])", "3-63 lowercase letters, digits and hyphens"),
    "lake_account": (r"[a-z0-9]{3,24}", "3-24 lowercase letters and digits"),
    "logs_account": (r"[a-z0-9]{3,24}", "3-24 lowercase letters and digits"),
    "lake_container": (r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", "3-63 lowercase letters, digits, single hyphens"),
    "lake_path": (r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*", "folders of letters, digits, '_', '.', '-'"),
}


def render(values: dict[str, Any], *, registry: str, image_tag: str, client_id: str, postgres_server: str,
           lake_account: str, logs_account: str, lake_container: str = "lake", lake_path: str = "mm") -> dict:
    arguments = dict(registry=registry, image_tag=image_tag, client_id=client_id, postgres_server=postgres_server,
                     lake_account=lake_account, logs_account=logs_account, lake_container=lake_container,
                     lake_path=lake_path)
    for name, value in arguments.items():
        pattern, rule = RULES[name]
        if not re.fullmatch(pattern, value) or ".." in value:
            raise ValueError(f"--{name.replace('_', '-')} {value!r}: expected {rule}")
    out = copy.deepcopy(values)
    image = {"repository": f"{registry.lower()}.azurecr.io/mm-assets", "tag": image_tag}
    out["serviceAccount"]["annotations"]["azure.workload.identity/client-id"] = client_id
    out["postgresql"]["postgresqlHost"] = f"{postgres_server}.postgres.database.azure.com"
    out["computeLogManager"]["config"]["azureBlobComputeLogManager"]["storageAccount"] = logs_account
    out["dagsterWebserver"]["image"].update(image)
    out["dagsterDaemon"]["image"].update(image)
    (deployment,) = out["dagster-user-deployments"]["deployments"]
    deployment["image"].update(image)
    lake = next(e for e in deployment["env"] if e["name"] == "MM_ASSETS__STORAGE__LAKE")
    lake["value"] = f"abfs://{lake_container}@{lake_account}.dfs.core.windows.net/{lake_path}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in RULES:
        parser.add_argument(f"--{name.replace('_', '-')}", required=name not in ("lake_container", "lake_path"),
                            default={"lake_container": "lake", "lake_path": "mm"}.get(name), help=RULES[name][1])
    parser.add_argument("--values", default=str(VALUES), help="the values file to start from")
    args = vars(parser.parse_args(argv))
    values = yaml.safe_load(Path(args.pop("values")).read_text())
    try:
        rendered = render(values, **args)
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(yaml.safe_dump(rendered, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
