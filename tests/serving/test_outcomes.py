"""Grouping simulated devices by what happened to them (``device simulate --by-outcome``)."""

from __future__ import annotations

from modelyard.sdk.simulate import DeviceResult, outcomes


def _result(device: str, **changes: object) -> DeviceResult:
    fields: dict[str, object] = {
        "device_id": device, "customer_id": "cus_acme", "platform": "linux", "tier": "canary",
        "bundle_version": 1, "files_verified": 4, "bytes": 105_700_000, "telemetry": "created",
        "error": None,
    }  # fmt: skip
    return DeviceResult(**(fields | changes))  # type: ignore[arg-type]


def _refused(device: str, error: str, **changes: object) -> DeviceResult:
    nothing = {"tier": None, "bundle_version": None, "files_verified": 0, "bytes": 0}
    return _result(device, telemetry="-", error=error, **(nothing | changes))


def test_devices_with_the_same_outcome_are_one_row_whatever_their_bucket() -> None:
    canary = "404 canary: bucket {} >= 5000; production: no active bundle"
    results = [
        _result("a-0"),
        _refused("a-1", canary.format(6801)),
        _result("a-2"),
        _refused("a-3", canary.format(9120), platform="ios"),
        _result("a-4", platform="android", bytes=49_100_000),
        _refused("b-0", "customer_id 'cus_beta' is not in customer_ids", customer_id="cus_beta"),
        _result("a-5", platform="android"),  # same size as a-0, another platform's artifact
    ]
    grouped = outcomes(results)
    assert [(g.example.device_id, g.devices, g.platforms) for g in grouped] == [
        ("a-0", 2, ("linux",)), ("a-1", 2, ("ios", "linux")), ("a-4", 1, ("android",)),
        ("b-0", 1, ("linux",)), ("a-5", 1, ("android",)),
    ]  # fmt: skip
    assert sum(g.devices for g in grouped) == len(results)


def test_a_different_error_is_a_different_outcome() -> None:
    grouped = outcomes([
        _result("a-0", error="coreml artifact is not verified"),
        _result("a-1", error="revoked key"),
    ])  # fmt: skip
    assert len(grouped) == 2
