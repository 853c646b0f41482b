"""The team deployment's security settings, checked by parsing docker-compose.yml (no engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # a dev dependency: missing, the test fails rather than skips

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {str(k): str(v) for k, v in env.items()}


def _published(service: dict[str, Any]) -> list[str]:
    return [str(p) for p in service.get("ports") or []]


def _listeners(env: dict[str, str]) -> dict[str, str]:
    return dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))


def test_the_published_kafka_listener_is_sasl_ssl_with_scram(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = _env(kafka)
    published = _published(kafka)
    assert published == ["19092:19092"]  # the internal PLAINTEXT 9092 and the controller stay unpublished
    names = {m.group(1): int(m.group(2)) for m in re.finditer(r"(\w+)://[^:,]*:(\d+)", env["KAFKA_LISTENERS"])}
    external = next(name for name, port in names.items() if port == 19092)
    assert _listeners(env)[external] == "SASL_SSL"
    prefix = f"KAFKA_LISTENER_NAME_{external}_"
    assert env[prefix + "SASL_ENABLED_MECHANISMS"].startswith("SCRAM-SHA-")
    assert "ScramLoginModule" in env[prefix + "SCRAM___SHA___512_SASL_JAAS_CONFIG"]
    assert env[prefix + "SSL_KEYSTORE_LOCATION"].startswith("/secrets/")
    assert env[prefix + "SSL_TRUSTSTORE_LOCATION"] == "/secrets/ca.crt"
    assert kafka["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    # the edge credentials are generated, and reach Kafka from a file, not a command line
    secrets_script = "\n".join(compose["services"]["secrets"]["command"])
    assert "openssl rand" in secrets_script and "edge.password" in secrets_script and "ca.crt" in secrets_script
    users = compose["services"]["kafka-users"]["command"]
    assert "--add-config-file" in users and not any("password=" in str(a) for a in users)


def test_redis_has_a_password_from_the_environment(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    script = "\n".join(redis["command"])
    assert "requirepass" in script and "$$REDIS_PASSWORD" in script
    assert "--requirepass" not in script  # not on redis-server's command line
    assert _env(redis)["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    bridge_url = _env(compose["services"]["bridge"])["CCSTREAM_REDIS_URL"]
    assert bridge_url.startswith("redis://:${REDIS_PASSWORD:?")


def test_the_sink_api_is_unpublished_and_token_protected(compose: dict[str, Any]) -> None:
    sink = compose["services"]["sink"]
    assert not _published(sink)
    assert "expose" not in sink
    env = _env(sink)
    assert env["CCSTREAM_WEB_TOKEN"].startswith("${CCSTREAM_WEB_TOKEN:?")
    assert "/ccstream/health/" in " ".join(sink["healthcheck"]["test"])  # the open endpoint, no data


def test_analytics_reads_through_a_read_only_clickhouse_user(compose: dict[str, Any]) -> None:
    ch = compose["services"]["clickhouse"]
    targets = {c["source"]: c["target"] for c in ch["configs"]}
    assert targets["clickhouse-analytics-user"].startswith("/etc/clickhouse-server/users.d/")
    xml = compose["configs"]["clickhouse-analytics-user"]["content"]
    assert re.search(r"<readonly>[12]</readonly>", xml)
    assert "<readonly><min>1</min></readonly>" in xml
    assert "GRANT SELECT ON ccstream.*" in xml and "ALL" not in xml
    assert 'from_env="CLICKHOUSE_ANALYTICS_PASSWORD"' in xml
    assert _env(ch)["CLICKHOUSE_USER"] == "ccstream"  # the sink's writer beside it


def test_secrets_come_from_the_environment_only(compose: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for service in compose["services"].values():
        for key, value in _env(service).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|AUTH", key):
                assert value.startswith("${") and ":?" in value, (key, value)
    # no literal credentials in a DSN or URL
    assert not re.search(r"://[^/\s:@$]+:[^@\s$]+@", text)


def test_grafana_reads_through_the_read_only_analytics_user(compose: dict[str, Any]) -> None:
    import yaml

    env = _env(compose["services"]["grafana"])
    assert env["CLICKHOUSE_ANALYTICS_PASSWORD"].startswith("${CLICKHOUSE_ANALYTICS_PASSWORD:?")
    assert "CLICKHOUSE_PASSWORD" not in env, "Grafana must not hold the sink's writer password"
    ds = yaml.safe_load((REPO / "grafana" / "provisioning" / "datasources" / "clickhouse.yml").read_text())
    (source,) = ds["datasources"]
    assert source["jsonData"]["username"] == "analytics"
    assert source["secureJsonData"]["password"] == "$CLICKHOUSE_ANALYTICS_PASSWORD"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
