"""Evaluation: metrics, slices, calibration, acceptance gates, the model card and the review set."""
