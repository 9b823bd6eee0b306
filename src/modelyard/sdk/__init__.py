"""The device SDK: fetch, verify and swap in bundles; score images with one; send telemetry.
No server imports."""

from modelyard.sdk.manager import DownloadMode, LocalBundle, ModelManager, Update
from modelyard.sdk.scorer import Box, Score, Scorer

__all__ = ["Box", "DownloadMode", "LocalBundle", "ModelManager", "Score", "Scorer", "Update"]
