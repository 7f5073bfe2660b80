"""What a key may do, and the settings that say so, checked before they are stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from privserve.auth.access import KeyAccess, expiry, model_patterns, networks
from privserve.errors import InvalidRequest

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_models_are_ids_or_patterns_and_empty_allows_all() -> None:
    access = KeyAccess(1, models=model_patterns("qwen*, gemma3-270m"))
    assert access.allows_model("qwen3-8b") and access.allows_model("gemma3-270m")
    assert not access.allows_model("gemma3-1b") and not access.allows_model("QWEN3")
    assert KeyAccess(1).allows_model("anything")
    with pytest.raises(InvalidRequest) as raised:
        model_patterns("a b")
    assert raised.value.param == "models"


def test_networks_are_cidr_and_a_lone_address_is_its_own_network() -> None:
    access = KeyAccess(1, networks=networks("10.0.0.0/8,192.168.1.7"))
    assert access.networks == ("10.0.0.0/8", "192.168.1.7/32")
    assert access.allows_address("10.2.3.4") and access.allows_address("192.168.1.7")
    assert not access.allows_address("127.0.0.1") and not access.allows_address(None)
    assert KeyAccess(1).allows_address("203.0.113.9")
    for bad in ("10.0.0.0/33", "not-a-network", "300.1.1.1"):
        with pytest.raises(InvalidRequest) as raised:
            networks(bad)
        assert raised.value.param == "networks"


def test_expiry_from_now_or_a_date_never_in_the_past() -> None:
    assert expiry("30d", NOW) == NOW + timedelta(days=30)
    assert expiry("12h", NOW) == NOW + timedelta(hours=12)
    assert expiry("2027-01-01", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert expiry(None, NOW) is None
    for bad in ("0d", "2020-01-01", "100/fortnight", "soon"):
        with pytest.raises(InvalidRequest) as raised:
            expiry(bad, NOW)
        assert raised.value.param == "expires"
    access = KeyAccess(1, expires_at=NOW)
    assert access.has_expired(NOW) and not access.has_expired(NOW - timedelta(seconds=1))
    naive = KeyAccess(1, expires_at=NOW.replace(tzinfo=None))  # as SQLite hands it back
    assert naive.has_expired(NOW)
