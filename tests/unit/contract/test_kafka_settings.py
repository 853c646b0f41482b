"""Kafka security settings pass through to aiokafka (the bridge) and to Faust (the workers), and secrets are
taken from the environment or the config file, never from command-line options.

TLS material is a throwaway CA, server and client certificate made with the `openssl` CLI for this module;
the client context ccstream builds is proven by a real TLS handshake over a socket pair (no server process)
in which the server requires and checks the client certificate.
"""

from __future__ import annotations

import ast
import asyncio
import re
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream.config import Settings, load_settings
from stream.contract.kafka import KafkaConfigError, aiokafka_kwargs, faust_credentials, ssl_context
from stream.stack.worker import parser as worker_parser

REPO = Path(__file__).resolve().parents[3]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _keypair_csr(name: str, cn: str, cwd: Path) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=ccstream test CA", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, cn in (("server", "localhost"), ("client", "ccstream-edge")):
        _keypair_csr(name, cn, d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=d)
    # a second, unrelated key: loading it with the client certificate must fail
    _keypair_csr("other", "other", d)
    return {n: d / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "other.key")}


def _settings(**kw: Any) -> Settings:
    return Settings(kafka_bootstrap="kafka1:9093,kafka2:9093", **kw)


# ---- SASL -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_passes_mechanism_user_and_password(mechanism: str) -> None:
    s = _settings(kafka_security_protocol="sasl_plaintext", kafka_sasl_mechanism=mechanism.lower(),
                  kafka_sasl_username="edge-alpha", kafka_sasl_password="s3cr3t")
    kw = aiokafka_kwargs(s)
    assert kw == {"bootstrap_servers": "kafka1:9093,kafka2:9093", "security_protocol": "SASL_PLAINTEXT",
                  "sasl_mechanism": mechanism, "sasl_plain_username": "edge-alpha",
                  "sasl_plain_password": "s3cr3t"}
    creds = faust_credentials(s)
    assert isinstance(creds, SASLCredentials)
    # what Faust hands to aiokafka for the workers equals what the bridge uses
    assert credentials_to_aiokafka_auth(creds) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism, "sasl_plain_username": "edge-alpha",
        "sasl_plain_password": "s3cr3t", "ssl_context": None}


def test_sasl_without_a_mechanism_is_refused_with_the_setting_to_set() -> None:
    s = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="p")
    with pytest.raises(KafkaConfigError, match="CCSTREAM_KAFKA_SASL_MECHANISM"):
        aiokafka_kwargs(s)


def test_no_broker_is_refused_with_the_setting_to_set() -> None:
    with pytest.raises(KafkaConfigError, match="CCSTREAM_KAFKA_BOOTSTRAP"):
        aiokafka_kwargs(Settings(kafka_bootstrap=None))


def test_plaintext_has_no_security_options() -> None:
    s = _settings()
    assert aiokafka_kwargs(s) == {"bootstrap_servers": "kafka1:9093,kafka2:9093", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None
    assert ssl_context(s) is None


def test_aiokafka_accepts_the_options() -> None:
    """aiokafka validates SASL/SSL options when a client is built (no connection is made)."""
    from aiokafka import AIOKafkaProducer

    s = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                  kafka_sasl_username="u", kafka_sasl_password="p")

    async def build() -> str:
        producer = AIOKafkaProducer(**aiokafka_kwargs(s))
        return str(producer.client._security_protocol)

    assert asyncio.run(build()) == "SASL_SSL"


# ---- TLS --------------------------------------------------------------------------------------------------


def _handshake(client_ctx: ssl.SSLContext, pki: dict[str, Path]) -> dict[str, Any]:
    """A TLS handshake over a socket pair; the server requires a client certificate signed by the CA.
    Returns the client certificate the server saw."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    server_ctx.load_verify_locations(pki["ca.pem"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    seen: dict[str, Any] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(b, server_side=True) as srv:
                seen["peer"] = srv.getpeercert()
                srv.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(a, server_hostname="localhost") as cli:
            assert cli.recv(2) == b"ok"
    finally:
        t.join(10)
    if "error" in seen:
        raise seen["error"]
    return dict(seen["peer"])


def test_ssl_with_ca_cert_and_key_authenticates_both_ways(pki: dict[str, Path]) -> None:
    s = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki["ca.pem"]),
                  kafka_ssl_certfile=str(pki["client.pem"]), kafka_ssl_keyfile=str(pki["client.key"]))
    kw = aiokafka_kwargs(s)
    assert set(kw) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert kw["security_protocol"] == "SSL"
    ctx = kw["ssl_context"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    peer = _handshake(ctx, pki)
    assert dict(x[0] for x in peer["subject"]) == {"commonName": "ccstream-edge"}

    creds = faust_credentials(s)
    assert isinstance(creds, SSLCredentials)
    faust_kw = credentials_to_aiokafka_auth(creds)
    assert faust_kw["security_protocol"] == "SSL"
    assert dict(x[0] for x in _handshake(faust_kw["ssl_context"], pki)["subject"]) == {"commonName": "ccstream-edge"}


def test_ssl_without_client_cert_is_refused_by_a_server_that_requires_one(pki: dict[str, Path]) -> None:
    s = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki["ca.pem"]))
    ctx = ssl_context(s)
    assert ctx is not None
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(ctx, pki)


def test_ssl_trusts_only_the_configured_ca(pki: dict[str, Path]) -> None:
    ctx = ssl_context(_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki["ca.pem"])))
    assert ctx is not None
    cas: list[Any] = ctx.get_ca_certs()
    assert [dict(x[0] for x in c["subject"]) for c in cas] == [{"commonName": "ccstream test CA"}]


def test_ssl_with_a_key_that_does_not_match_the_cert_fails_at_start(pki: dict[str, Path]) -> None:
    s = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki["ca.pem"]),
                  kafka_ssl_certfile=str(pki["client.pem"]), kafka_ssl_keyfile=str(pki["other.key"]))
    with pytest.raises(ssl.SSLError):
        aiokafka_kwargs(s)


def test_sasl_ssl_carries_both_the_tls_context_and_the_sasl_login(pki: dict[str, Path]) -> None:
    s = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                  kafka_sasl_username="sink", kafka_sasl_password="pw", kafka_ssl_cafile=str(pki["ca.pem"]),
                  kafka_ssl_certfile=str(pki["client.pem"]), kafka_ssl_keyfile=str(pki["client.key"]))
    kw = aiokafka_kwargs(s)
    assert {k: v for k, v in kw.items() if k != "ssl_context"} == {
        "bootstrap_servers": "kafka1:9093,kafka2:9093", "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "sink", "sasl_plain_password": "pw"}
    _handshake(kw["ssl_context"], pki)
    faust_kw = credentials_to_aiokafka_auth(faust_credentials(s))
    assert {k: v for k, v in faust_kw.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "sink",
        "sasl_plain_password": "pw"}
    _handshake(faust_kw["ssl_context"], pki)


# ---- where secrets come from ------------------------------------------------------------------------------


def test_secrets_come_from_the_config_file_and_the_environment_wins(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('kafka_bootstrap = "kafka:9093"\nkafka_security_protocol = "SASL_SSL"\n'
                   'kafka_sasl_mechanism = "SCRAM-SHA-512"\nkafka_sasl_username = "edge"\n'
                   'kafka_sasl_password = "from-file"\n'
                   'clickhouse_dsn = "https://ccstream:ch-from-file@ch.example:8443/ccstream"\n')
    s = load_settings({"CCSTREAM_CONFIG": str(cfg)})
    kw = aiokafka_kwargs(s)
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == \
           ("SCRAM-SHA-512", "edge", "from-file")
    assert s.effective_clickhouse_dsn == "https://ccstream:ch-from-file@ch.example:8443/ccstream"

    s = load_settings({"CCSTREAM_CONFIG": str(cfg), "CCSTREAM_KAFKA_SASL_PASSWORD": "from-env",
                       "CCSTREAM_CLICKHOUSE_DSN": "http://u:ch-from-env@ch:8123/db"})
    assert aiokafka_kwargs(s)["sasl_plain_password"] == "from-env"
    assert s.clickhouse_dsn == "http://u:ch-from-env@ch:8123/db"


SECRET_OPTION = re.compile(r"pass|secret|token|credential|sasl|dsn|auth|private|api.?key|ssl", re.I)


def _cli_options() -> dict[str, list[str]]:
    """Every option string given to argparse's add_argument in stream/ and agents/, by file."""
    found: dict[str, list[str]] = {}
    for path in sorted([*REPO.glob("stream/**/*.py"), *REPO.glob("agents/**/*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "add_argument":
                opts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                        and a.value.startswith("-")]
                found.setdefault(str(path.relative_to(REPO)), []).extend(opts)
    return found


def test_no_command_takes_a_secret_as_an_option() -> None:
    options = _cli_options()
    everything = [o for opts in options.values() for o in opts]
    # the scan sees the real commands (not vacuous): options known to exist are found
    assert {"--roles", "--no-bridge", "--redis-url", "--bootstrap", "--scope", "--format"} <= set(everything)
    assert len(everything) >= 25
    offending = {f: [o for o in opts if SECRET_OPTION.search(o)] for f, opts in options.items()}
    assert {f: o for f, o in offending.items() if o} == {}


@pytest.mark.parametrize("prog", ["ccstream worker", "ccstream edge", "ccstream sink"])
@pytest.mark.parametrize("flag", ["--kafka-sasl-password", "--password", "--clickhouse-dsn"])
def test_worker_commands_reject_secret_flags(prog: str, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        worker_parser(prog).parse_args([flag, "x"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
