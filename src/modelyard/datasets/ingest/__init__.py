"""Ingest: one reader per input format, all producing ``SourceRecord``s for ``run_ingest``."""

from modelyard.datasets.ingest.run import FORMATS, IngestReport, read_source, run_ingest

__all__ = ["FORMATS", "IngestReport", "read_source", "run_ingest"]
