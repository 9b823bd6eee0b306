"""Data quality: integrity rules and leakage checks on snapshot manifests, run by Great
Expectations suites kept in ``expectations/`` (the only importer of great_expectations is
``quality.expectations``)."""
