"""rca: reads the logs and traces of an incident and tells the responder what most likely caused it.

The library is the product; the CLI (`rca.cli`) only parses options and picks a renderer.
Heavy modules (polars, detectors) are imported lazily so `rca --help` stays instant.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
