"""Kafka connection options from Settings, shared by the bridge (aiokafka) and the Faust worker.

Security settings pass straight through: SASL (PLAIN, SCRAM-SHA-256/512) and TLS with a CA, a client
certificate and key. Passwords come from the environment or the config file, never the command line.
"""

from __future__ import annotations

import ssl
from typing import Any

from stream.config import Settings


class KafkaConfigError(ValueError):
    pass


def bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise KafkaConfigError("no Kafka broker configured: set CCSTREAM_KAFKA_BOOTSTRAP=host:9092 "
                               "(ccstream up starts a local one by itself)")
    return settings.kafka_bootstrap


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol.upper():
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return ctx


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments for AIOKafkaProducer / AIOKafkaConsumer."""
    proto = settings.kafka_security_protocol.upper()
    kwargs: dict[str, Any] = {"bootstrap_servers": bootstrap(settings), "security_protocol": proto}
    ctx = ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if proto.startswith("SASL"):
        if not settings.kafka_sasl_mechanism:
            raise KafkaConfigError(f"security protocol {proto} needs CCSTREAM_KAFKA_SASL_MECHANISM "
                                   "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism.upper(),
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password)
    return kwargs


def faust_credentials(settings: Settings) -> Any:
    """Faust's broker_credentials for the same settings (None for PLAINTEXT)."""
    import faust

    proto = settings.kafka_security_protocol.upper()
    ctx = ssl_context(settings)
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
            mechanism=(settings.kafka_sasl_mechanism or "PLAIN").upper(), ssl_context=ctx)
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None
