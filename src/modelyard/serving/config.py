"""params.yaml ``serve``: how the device API caches, limits and bounds what it is sent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.config import from_mapping, load_params
from modelyard.errors import ConfigError

UNVERIFIABLE = ("coreml", "onnx", "tflite")  # the device formats (catalog.FORMATS)


@dataclass(frozen=True, kw_only=True)
class ServeParams:
    cache_ttl_s: float = 2.0  # how stale the active bundles and API keys held in memory may be
    cache_max_age_s: int = 60  # Cache-Control max-age of /latest
    rate_limit_per_s: float = 200.0  # requests per second per API key (a token bucket)
    rate_limit_burst: int = 400
    telemetry_max_bytes: int = 65_536
    telemetry_max_window_s: int = 86_400
    telemetry_max_skew_s: int = 300  # how far in the future a window may end (device clocks)
    # formats whose artifacts are served although their parity was never checked in their
    # runtime (CoreML exported off macOS): none by default
    allow_unverified: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [f for f in self.allow_unverified if f not in UNVERIFIABLE]
        if unknown:
            raise ConfigError(
                f"serve.allow_unverified: '{unknown[0]}' is not a format; valid: "
                f"{', '.join(UNVERIFIABLE)}"
            )
        for name in ("cache_ttl_s", "rate_limit_per_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"serve.{name}: {getattr(self, name)} must be >= 0")
        for name in ("rate_limit_burst", "telemetry_max_bytes", "telemetry_max_window_s"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve.{name}: {getattr(self, name)} must be >= 1")


def load(path: Path | None) -> ServeParams:
    """The ``serve`` section of ``path`` (defaults where the file or the section is absent)."""
    if path is None or not path.is_file():
        return ServeParams()
    section = load_params(path).get("serve")
    return ServeParams() if section is None else from_mapping(ServeParams, section, "serve")
