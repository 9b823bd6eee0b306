"""Data quality: integrity rules and leakage checks on snapshot manifests, run by Great
Expectations suites kept in ``expectations/`` (the only importer of great_expectations is
``quality.expectations``)."""

# Exit status of a command or stage whose quality gate failed (1 means it could not run).
EXIT_GATE_FAILED = 2
