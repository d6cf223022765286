"""OpenTelemetry OTLP: traces, logs and metrics, as OTLP/JSON (collector file exporter lines, or one
pretty-printed document) and as protobuf (`TracesData`/`LogsData`/`MetricsData` = the Export*ServiceRequest
messages, a single message or the file exporter's stream of 4-byte big-endian length-prefixed messages,
signals told apart per message by `signals` or `--signal`).

The package, imported downward only (no module imports one listed after it):
- `common`: the vocabulary (span kinds, status codes, semantic-convention attribute names and their older
  aliases, the raw span columns) and the helpers every span format uses (`hex_id`, `any_value`, `pick`,
  `span_columns_frame`, `log_event`, `metric_points`, `signal_frames`); Jaeger and Zipkin use them too;
- `signals`: which signal a protobuf message holds, told by wire types; protobuf logs and metrics as
  the OTLP/JSON shape `common` maps;
- `json_spans`: OTLP/JSON spans decoded by msgspec structs and turned into columns;
- `columns`: protobuf spans decoded by upb column by column;
- `parallel`: cutting a big file into parts decoded by worker processes, and their transport;
- `split`: one big protobuf message cut, as it is read, into smaller messages of its type;
- `json`: the `otlp-json` format; `protobuf`: the `otlp-proto` format;
- `worker`: the worker process's entry point (`python -c "from rca.parsers.otlp.worker import main"`).

OTLP/JSON is read by hand, never by protobuf's generic JSON mapping (`json_format`), which reads trace
and span ids as base64 and silently yields wrong 24-byte ids from the hex strings OTLP/JSON uses:
spans by msgspec structs and columns (`json_spans`), logs, metrics and any line those structs refuse
by orjson and a dict walk. Ids are lower-cased hex; a value that is not 32/16 hex characters is tried as
base64 (Grafana Tempo's protojson), and `batches` is accepted as an alias of `resourceSpans`. Enums are
integers, 64-bit integers decimal strings (numbers accepted too). Semantic-convention renames are
mapped (`http.method` -> `http.request.method`, `peer.service`/`service.peer.name`, `db.system`/
`db.system.name`, ...). One file may mix signals: each line is dispatched on its top-level key. Log
records and metric points of both encodings go through one mapping (`log_event`, `metric_points`,
`signal_frames`). Protobuf traces are decoded by upb column by column (`columns`: a reduced schema, one
repeated column per field for a batch of messages, numpy and polars assembly); a batch those columns
cannot hold exactly is walked span by span on opentelemetry-proto's full schema, filling column lists.
Both encodings cut a file of 64 MB or more into one part per core (at line ends, at message bounds),
decoded by worker processes beside this one (`parallel`, `worker`): upb and the JSON walk hold the
GIL, so threads would not run side by side; a part's spans come back as Arrow IPC.
"""

from __future__ import annotations

# The two formats register themselves with the parser registry on import.
from rca.parsers.otlp import json, protobuf  # noqa: F401
