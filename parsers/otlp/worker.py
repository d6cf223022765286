"""Worker process for a part of a big OTLP file (started by `parallel.in_workers`).

Its part comes on stdin as `parallel.send_part` wrote it. OTLP/JSON (`json.walk_in_processes`):
`("json", first line number)` and the part's bytes; writes the part's `JsonWalk`. Protobuf
(`protobuf.decode_in_processes`): `("proto", (start, end) of each message, first message number,
forced signal)` and the messages' bytes; writes `(log events, metric points, message count)`
and the raw span frame; an input error in the part exits non-zero (the caller decodes the part itself
and raises it in order). Both write with `parallel.write_part`.

`serve` holds a conversation instead (`parallel.decode_blocks`): blocks of OTLP/JSON lines or protobuf
messages come one after another as `parallel.write_message` writes them, meta `(format, *the block's
meta, sampling level or None)`, and each is answered with `json.block_reply` (`protobuf.messages_reply`)
of it, until the input ends.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from collections.abc import Callable
from typing import Any

from rca.parsers.otlp.common import concat_raw_spans
from rca.parsers.otlp.json import block_reply, walk_json
from rca.parsers.otlp.parallel import read_message, receive_part, write_message, write_part
from rca.parsers.otlp.protobuf import OtlpProtoParser, messages_reply
from rca.parsers.sources import Source


def main() -> None:
    """Decode the part given on stdin and write the result to stdout."""
    meta, raw = receive_part(sys.stdin.buffer)
    out = sys.stdout.buffer
    if meta[0] == "proto":
        _, bounds, first_number, forced = meta
        view = memoryview(raw)
        blobs = [view[start:end] for start, end in bounds]
        gc.disable()
        events: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        pieces, messages = OtlpProtoParser().decode_messages(blobs, first_number, Source("part", None), forced, events, metrics)  # type: ignore[arg-type]
        write_part(out, (events, metrics, messages), concat_raw_spans(pieces) if pieces else None)
        return
    _, first_number = meta
    walk = walk_json(raw, 0, len(raw), first_number, per_line=True)
    write_part(out, dataclasses.replace(walk, spans=None), walk.spans)


def serve() -> None:
    """Answer each block of OTLP/JSON lines given on stdin with what the reader keeps of it, until stdin ends."""
    given, out = sys.stdin.buffer, sys.stdout.buffer
    decoders: dict[str, Callable[..., Any]] = {"otlp-json": block_reply, "otlp-proto": messages_reply}
    while (message := read_message(given)) is not None:
        (kind, *meta), _, raw = message
        try:
            rest, (sampled, frames) = decoders[kind](raw, *meta)
        except Exception:  # the reader decodes the block itself and raises what it meets, in order
            write_message(out, None, [])
            continue
        write_message(out, (rest, sampled), frames)
        del raw, rest, frames
        gc.collect()


if __name__ == "__main__":
    main()
