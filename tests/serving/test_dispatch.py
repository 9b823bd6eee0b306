"""Dispatch as pure logic: the bucketing formula and its vectors, weights, targeting."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.serving import dispatch
from modelyard.serving.dispatch import Device


def vectors() -> list[dict]:
    text = resources.files("modelyard.serving").joinpath("bucket_vectors.json").read_text()
    return list(json.loads(text)["vectors"])


@pytest.mark.parametrize("vector", vectors(), ids=lambda v: f"{v['policy_id']}:{v['device_id']}")
def test_bucket_vectors_hold(vector: dict) -> None:
    digest = hashlib.sha256(f"{vector['policy_id']}:{vector['device_id']}".encode()).digest()
    assert digest[:8].hex() == vector["first_8_bytes_hex"]
    assert int.from_bytes(digest[:8], "big") % 10_000 == vector["bucket"]
    assert dispatch.bucket(vector["policy_id"], vector["device_id"]) == vector["bucket"]


@pytest.mark.parametrize("weight", [1, 10, 25, 50, 90])
def test_share_of_10000_devices_is_within_1_5_points_of_the_weight(weight: int) -> None:
    inside = sum(
        dispatch.in_canary(dispatch.bucket("demo-policy", f"device-{i}"), weight)
        for i in range(10_000)
    )
    assert abs(inside / 100 - weight) <= 1.5


@given(st.text(min_size=1, max_size=40), st.integers(0, 99), st.integers(0, 100))
def test_raising_the_weight_keeps_every_device_that_was_in(device: str, low: int, up: int) -> None:
    high = min(100, low + up)
    b = dispatch.bucket("demo-policy", device)
    if dispatch.in_canary(b, low):
        assert dispatch.in_canary(b, high)


class Tier:
    def __init__(self, weight: int, targeting: dict | None) -> None:
        self.weight, self.targeting = weight, targeting


def device(**kw: str) -> Device:
    base = {"policy_id": "p", "device_id": "d", "platform": "android", "customer_id": "cus_a"}
    attributes = {k: kw.pop(k) for k in list(kw) if k == "region"}
    return Device(**(base | kw), attributes=attributes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("targeting", "fields", "matches"),
    [
        (None, {}, True),
        ({"customer_ids": ["cus_a"]}, {}, True),
        ({"customer_ids": ["cus_b"]}, {}, False),
        ({"platforms": ["ios"]}, {}, False),
        ({"device_ids": ["d"]}, {}, True),
        ({"min_app_version": "1.10"}, {"app_version": "1.9.3"}, False),
        ({"min_app_version": "1.10"}, {"app_version": "1.10"}, True),
        ({"min_app_version": "1.10"}, {}, False),
        ({"max_os_version": "17"}, {"os_version": "17.0.1"}, False),
        ({"max_os_version": "17.1"}, {"os_version": "17.0.1"}, True),
        ({"region": ["eu"]}, {"region": "eu"}, True),
        ({"region": ["eu"]}, {}, False),
        ({"min_app_version": "not-a-version"}, {"app_version": "1.0"}, False),
    ],
)
def test_targeting(targeting: dict | None, fields: dict, matches: bool) -> None:
    assert (dispatch.mismatch(targeting, device(**fields)) is None) is matches


def test_canary_and_production_never_share_a_bucket() -> None:
    canary, production = Tier(30, None), Tier(100, None)
    for i in range(2_000):
        d = device(device_id=f"dev-{i}")
        choice = dispatch.choose(canary, production, d)
        assert (choice.tier == "canary") is (choice.bucket < 3_000)


def test_a_device_outside_every_tier_gets_reasons() -> None:
    choice = dispatch.choose(Tier(10, {"customer_ids": ["x"]}), None, device())
    assert choice.bundle is None
    assert any("customer_id" in r for r in choice.reasons)
    assert any("production: no active bundle" in r for r in choice.reasons)
