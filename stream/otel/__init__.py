"""Claude Code's own OpenTelemetry in ccstream's store: the OTLP/HTTP receiver (edge role), its request
rules, the decoding into the OpenTelemetry Collector ClickHouse exporter's rows, and the writer (docs/otel.md)."""
