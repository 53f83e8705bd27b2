"""The container image, docker-compose.yml and the Kubernetes manifests, checked
offline: schemas (compose-spec, Kubernetes OpenAPI), hadolint, kustomize
rendering, and cross-checks against the code (every service, port and
environment variable they name exists)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from services.common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICES = ("ledger", "listener", "sweeper", "notifier", "checkout")
HTTP = {"checkout": 8080}  # services that serve HTTP, not gRPC
K8S_VERSION = "1.33.0"


def known_env_vars() -> set[str]:
    """Every PAYMESH_* variable some service reads, plus those chains and rates files expand."""
    names = {"PAYMESH_SERVICE", "PAYMESH_FAILPOINTS"}
    for service in SERVICES:
        if not (ROOT / "services" / service / "settings.py").exists():
            continue
        module = importlib.import_module(f"services.{service}.settings")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, CommonSettings):
                prefix = value.model_config.get("env_prefix", "")
                for field, info in value.model_fields.items():
                    names.add(f"{prefix}{field}".upper())
                    alias = info.validation_alias
                    for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
                        if isinstance(choice, str):
                            names.add(choice.upper())
    config_files = [ROOT / "chains.yaml", ROOT / "rates.yaml"]
    config_files += [*ROOT.glob("deploy/**/chains*.yaml"), *ROOT.glob("deploy/**/rates*.yaml")]
    for path in config_files:
        names |= set(re.findall(r"\$\{(PAYMESH_[A-Z0-9_]+)", path.read_text()))
    return names


def test_dockerfile_lints_clean():
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "deploy" / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_every_service_by_name():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "services"]' in text and "USER 10001" in text
    for service in SERVICES:
        assert (ROOT / "services" / service / "__main__.py").exists(), f"no services/{service}"


def test_compose_matches_schema():
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Ports a service serves beside its main one (HTTP/JSON, PAYMESH_CONNECT_PORT).
EXTRA_PORTS = {"ledger": (8081,), "notifier": (8084,)}


def test_compose_names_only_what_exists():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    env_names = known_env_vars()
    paymesh = {n: s for n, s in services.items() if s.get("image") == "paymesh:dev"}
    assert set(SERVICES) <= set(paymesh), "every paymesh service runs in compose"
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
    for name, svc in paymesh.items():
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert svc["command"][0] in SERVICES, f"{name}: unknown service {svc['command'][0]}"
        for var in svc.get("environment", {}):
            if var.startswith("PAYMESH_"):
                assert var in env_names, f"{name}: {var} is read by no service"
        for port in svc.get("ports", []):
            served = {HTTP.get(svc["command"][0], 50051), *EXTRA_PORTS.get(svc["command"][0], ())}
            assert port.split(":")[-1] in {str(p) for p in served}, (
                f"{name}: the image serves {svc['command'][0]} on {sorted(served)}"
            )
    # The one-shot commands parse with the real CLI (migrate; admin create-merchant).
    for name in ("migrate", "demo-bootstrap"):
        args = paymesh[name]["command"][1:]
        probe = [args[0], "--help"] if name == "migrate" else [*args[:2], "--help"]
        parsed = subprocess.run(
            [sys.executable, "-m", "services.ledger", *probe], capture_output=True, text=True, cwd=ROOT
        )
        assert parsed.returncode == 0, parsed.stderr


def render(overlay: str) -> list[dict]:
    result = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(ROOT / "deploy" / "k8s" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.mark.parametrize("overlay", ["base", "overlays/dev", "overlays/prod"])
def test_kustomizations_render_and_validate(overlay):
    objects = render(overlay)
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {err.message} at {list(err.path)}")


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_manifests_follow_the_rules(overlay):
    objects = render(overlay)
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    env_names = known_env_vars()
    for service in SERVICES:
        deployment = by_kind["Deployment"][service]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["args"] == [service]
        for probe in ("readinessProbe", "livenessProbe"):
            if service in HTTP:
                assert container[probe]["httpGet"]["port"] == "http", f"{service}: HTTP {probe}"
            else:
                assert container[probe]["grpc"]["port"] == 50051, f"{service}: gRPC {probe}"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        mounts_seed = any(
            v.get("secret", {}).get("secretName", "").startswith("sweeper-seed") for v in pod.get("volumes", [])
        )
        assert mounts_seed == (service == "sweeper"), "only the sweeper mounts the seed"
        assert service in by_kind["Service"] and service in by_kind["PodDisruptionBudget"]
        config = by_kind["ConfigMap"][f"{service}-config"]["data"]
        for var in [*config, *(e["name"] for e in container.get("env", []))]:
            assert var in env_names, f"{service}: {var} is read by no service"
    assert "ledger-ingress" in by_kind["NetworkPolicy"] and "default-deny-ingress" in by_kind["NetworkPolicy"]
    assert "ledger-migrate" in by_kind["Job"]
    if overlay.endswith("prod"):
        assert set(by_kind["HorizontalPodAutoscaler"]) == {"ledger", "notifier"}
        assert "Secret" not in by_kind, "production secrets are created by the operator, never rendered"
        assert by_kind["Deployment"]["ledger"]["spec"]["replicas"] >= 2
        # The checkout is the one service on the internet: the only Ingress, to it alone.
        assert {
            i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] for i in by_kind["Ingress"].values()
        } == {"checkout"}
    # The checkout reaches DNS and the ledger's gRPC port, nothing else.
    egress = by_kind["NetworkPolicy"]["checkout-egress"]["spec"]["egress"]
    assert [r.get("ports") for r in egress] == [
        [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        [{"protocol": "TCP", "port": 50051}],
    ]
    assert egress[1]["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "ledger"}}}]
