"""Worker process for a part of a big OTLP file.

OTLP/JSON (`parsers.otlp._walk_in_processes`): reads `(payload, first line number)` pickled on stdin,
writes the part's `JsonWalk` pickled on stdout. Protobuf (`parsers.otlp._decode_in_processes`): reads
`("proto", messages, first message number, forced signal)`, writes the pickled `(log events, metric
points, message count, whether spans follow)` after its 8-byte length, then the raw span frame as
Arrow IPC; an input error in the part exits non-zero (the caller decodes the
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
        import struct

        import polars as pl

        from parsers.otlp import RAW_SPAN_TYPES, OtlpProtoParser
        from parsers.sources import Source

        _, blobs, first_number, forced = given
        gc.disable()
        events: list = []
        metrics: list = []
        pieces, messages = OtlpProtoParser()._decode(blobs, first_number, Source("part", None), forced, events, metrics)  # type: ignore[arg-type]
        out = sys.stdout.buffer
        header = pickle.dumps((events, metrics, messages, bool(pieces)), protocol=5)
        out.write(struct.pack("<Q", len(header)) + header)
        if pieces:  # Arrow IPC: several times faster both ways than pickling the frame
            pl.concat([p.select([pl.col(c).cast(t) for c, t in RAW_SPAN_TYPES.items()]) for p in pieces]).write_ipc(
                out, compat_level=pl.CompatLevel.newest())
        out.flush()
        return
    payload, first_number = given
    walk = walk_json(payload, 0, len(payload), first_number, per_line=True)
    sys.stdout.buffer.write(pickle.dumps(walk, protocol=5))


if __name__ == "__main__":
    main()
