"""The quality predictor: a small MLP per codec that predicts an encode's VMAF from its
features, judged by leave-one-source-out (LOSO) cross-validation."""
