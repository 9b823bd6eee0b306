"""Training: detectors, classifiers and regressors, run inside a tracked MLflow run."""
