"""Object detectors: RT-DETRv2 (transformers, Lightning) and YOLO (ultralytics)."""
