"""The model registry side: register gated models in MLflow (and, next, promote and bridge)."""
