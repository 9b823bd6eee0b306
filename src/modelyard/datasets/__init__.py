"""Datasets: ingest (one module per input format), checks, the demo generator, inspection."""
