"""Worker process for a part of a big OTLP file.

OTLP/JSON (`parsers.otlp._walk_in_processes`): reads `(payload, first line number)` pickled on stdin,
writes the part's `JsonWalk` pickled on stdout. Protobuf (`parsers.otlp._decode_in_processes`): reads
`("proto", messages, first message number, forced signal)`, writes `(raw span frames, log events,
metric points, message count)`; an input error in the part exits non-zero (the caller decodes the
part itself and raises it in order).
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from parsers.otlp import walk_json

    given = pickle.loads(sys.stdin.buffer.read())
    if given[0] == "proto":
        import gc

        from parsers.otlp import OtlpProtoParser
        from parsers.sources import Source

        _, blobs, first_number, forced = given
        gc.disable()
        events: list = []
        metrics: list = []
        pieces, messages = OtlpProtoParser()._decode(blobs, first_number, Source("part", None), forced, events, metrics)  # type: ignore[arg-type]
        sys.stdout.buffer.write(pickle.dumps((pieces, events, metrics, messages), protocol=5))
        return
    payload, first_number = given
    walk = walk_json(payload, 0, len(payload), first_number, per_line=True)
    sys.stdout.buffer.write(pickle.dumps(walk, protocol=5))


if __name__ == "__main__":
    main()
