"""The Kafka contract: topic names live in Settings; each message shape, its key and codec
live in a module of this package named for it.

docs/topics.md documents these shapes for downstream consumers; keep the two in step.

* ``ccstream.sessions``      key: session id (utf-8).  value: one JSON object, a :class:`SessionEvent`.
* ``ccstream.raw-events``    key: session id (utf-8).  value: a :class:`RawChunk`: a JSON header line, then one
  transcript record per line (records never contain a newline, so the framing is unambiguous).
* ``ccstream.dead-letters``  key: file id (utf-8).     value: one JSON object, a :class:`DeadLetter`.
* ``ccstream.<app>.tail-requests`` (edge-internal) key: file path. value: a :class:`TailRequest`.

Volume travels in chunks (the records of one file read together), never one message per line: a Faust agent
costs ~180 µs a message here, so per-line messages would cap the pipeline near 5k lines/s.
"""
