"""The device SDK: fetch, verify and swap in bundles; send telemetry. No server imports."""

from modelyard.sdk.manager import DownloadMode, LocalBundle, ModelManager, Update

__all__ = ["DownloadMode", "LocalBundle", "ModelManager", "Update"]
