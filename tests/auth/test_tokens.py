"""Token lifetimes and token endpoint requests."""

from __future__ import annotations

from aiinfn_hub.auth import tokens


def test_expiry_comes_from_expires_in_or_a_short_assumption() -> None:
    assert tokens.expires_at({"expires_in": 60}, now=1000) == 1060
    assert tokens.expires_at({"expires_in": "60"}, now=1000) == 1060
    assert tokens.expires_at({}, now=1000) == 1000 + tokens.ASSUMED_LIFETIME
    assert tokens.expires_at({"expires_in": "soon"}, now=1000) == 1000 + tokens.ASSUMED_LIFETIME
    assert tokens.expires_at({"expires_in": -5}, now=1000) == 1000


def test_refresh_is_due_when_the_first_token_nears_expiry() -> None:
    state = {"expires_at": 1100, "storage_token": {"expires_at": 1050}}
    assert not tokens.needs_refresh(state, margin=30, now=1000)
    assert tokens.needs_refresh(state, margin=60, now=1000)  # the storage token first
    assert tokens.needs_refresh({"expires_at": 1100, "storage_token": None}, 100, now=1000)
    assert tokens.needs_refresh({}, margin=0, now=1000)  # unknown expiry: renew


def test_expired_means_the_login_token() -> None:
    assert tokens.is_expired({"expires_at": 999}, now=1000)
    assert not tokens.is_expired({"expires_at": 1001}, now=1000)


def test_exchange_request_follows_rfc_8693() -> None:
    params = tokens.exchange_params("AT", "object-store", ["storage.read:/"])
    assert params == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "AT",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "object-store",
        "scope": "storage.read:/",
    }
    assert "scope" not in tokens.exchange_params("AT", "object-store", [])


def test_storage_entry_and_secret_values() -> None:
    entry = tokens.storage_token_entry(
        {"access_token": "ST", "expires_in": 10, "scope": "s"}, "aud", now=5
    )
    assert entry == {"access_token": "ST", "expires_at": 15, "audience": "aud", "scope": "s"}
    state = {"access_token": "A", "refresh_token": "R", "id_token": None, "storage_token": entry}
    assert sorted(tokens.secret_values(state)) == ["A", "R", "ST"]
    assert tokens.secret_values(None) == []


def test_fingerprints_tell_tokens_apart_without_keeping_them() -> None:
    assert tokens.fingerprint("a") == tokens.fingerprint("a") != tokens.fingerprint("b")
    assert len(tokens.fingerprint("secret-token")) == 16
    assert "secret-token" not in tokens.fingerprint("secret-token")
