"""Worker process for a part of a big OTLP/JSON file (see `parsers.otlp._walk_in_processes`).

Reads `(payload, first line number)` pickled on stdin, writes the part's `JsonWalk` pickled on stdout.
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from parsers.otlp import walk_json

    payload, first_number = pickle.loads(sys.stdin.buffer.read())
    walk = walk_json(payload, 0, len(payload), first_number, per_line=True)
    sys.stdout.buffer.write(pickle.dumps(walk, protocol=5))


if __name__ == "__main__":
    main()
