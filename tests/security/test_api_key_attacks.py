"""Attacks on API keys (SPEC §4.4, §3): malformed and forged keys are 401 problem+json with an
``ApiKey`` challenge, never a 500, never echoed; typos are refused by their shape and checksum
alone, without a database read; secrets are unguessable and bound to this server's pepper."""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from bastion.api_keys import BASE62, new_api_key, new_key_id, parse_api_key
from tests.conftest import Harness, make_settings, open_harness
from tests.integration.helpers import PROBLEM_JSON, assert_problem

KEY_CHALLENGE = 'ApiKey realm="bastion"'
KEY_SHAPE_SECRET = slice(len("bst_") + 12 + 1, -6)


async def make_key(h: Harness, username: str = "alice", **fields: Any) -> str:
    headers = await h.user_with_token(username)
    response = await h.client.post("/auth/keys", json={"name": "ci", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def assert_refused(response: httpx.Response, sent: str | bytes) -> None:
    """401 problem+json with the ``ApiKey`` challenge, and not a byte of the key echoed."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == 401
    assert body["detail"]
    assert KEY_CHALLENGE in response.headers["www-authenticate"]
    assert "no-store" in response.headers.get("cache-control", "")
    text = sent.decode("latin-1") if isinstance(sent, bytes) else sent
    if len(text) >= 8:
        assert text not in response.text
        assert text[:40] not in response.text
        assert text[-20:] not in response.text


@contextmanager
def key_lookups(h: Harness) -> Iterator[list[str]]:
    """Every way this worker could read a key record: SQL on ``api_keys`` and the service's
    record loader."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split()).upper()
        if text.startswith("SELECT") and "API_KEYS" in text:
            seen.append(text)

    service = h.bastion.api_keys
    original = service._record

    async def counting_record(key_id: str) -> Any:
        seen.append(f"record:{key_id}")
        return await original(key_id)

    engine = h.bastion.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    service._record = counting_record
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        del service._record


def flip(key: str, position: int) -> str:
    char = key[position]
    replacement = BASE62[(BASE62.index(char) + 1) % 62] if char in BASE62 else "A"
    return key[:position] + replacement + key[position + 1 :]


MALFORMED: dict[str, Callable[[str], str | bytes]] = {
    "wrong-prefix": lambda k: "bsx_" + k[4:],
    "github-prefix": lambda k: "ghp_" + k[4:],
    "upper-prefix": lambda k: "BST_" + k[4:],
    "no-prefix": lambda k: k[4:],
    "flipped-checksum": lambda k: flip(k, len(k) - 1),
    "flipped-secret": lambda k: flip(k, 30),
    "flipped-id": lambda k: flip(k, 6),
    "swapped": lambda k: k[:20] + k[21] + k[20] + k[22:] if k[20] != k[21] else flip(k, 20),
    "truncated": lambda k: k[:-1],
    "half": lambda k: k[: len(k) // 2],
    "one-longer": lambda k: k + "A",
    "doubled": lambda k: k + k,
    "no-checksum": lambda k: k[:-6],
    "non-ascii-utf8": lambda k: (k[:10] + "é" + k[11:]).encode("utf-8"),
    "non-ascii-latin1": lambda k: (k[:10] + "é" + k[11:]).encode("latin-1"),
    "ten-kib": lambda k: "bst_" + "A" * 10 * 1024,
    "empty": lambda k: "",
    "prefix-only": lambda k: "bst_",
    "underscores": lambda k: "_" * len(k),
    "sql": lambda k: "bst_' OR '1'='1' --" + "A" * 36,
    "bearer-like": lambda k: "Bearer " + k,
}


@pytest.mark.parametrize("mangle", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_keys_are_401_without_a_database_read(
    harness: Harness, mangle: Callable[[str], str | bytes]
) -> None:
    key = await make_key(harness)
    sent = mangle(key)
    assert sent != key

    with key_lookups(harness) as lookups:
        raw = sent if isinstance(sent, bytes) else sent.encode("ascii")
        response = await harness.client.get("/items", headers=[(b"X-API-Key", raw)])

    assert_refused(response, sent)
    assert lookups == [], "a malformed key must be refused by its shape alone"
    # The real key is untouched by the attempt.
    assert (await harness.client.get("/items", headers={"X-API-Key": key})).status_code == 200


async def test_the_lookup_counter_sees_a_well_formed_unknown_key(harness: Harness) -> None:
    """Control for the test above: a key that passes the checksum is looked up, once."""
    await make_key(harness)
    unknown = new_api_key(new_key_id())
    assert parse_api_key(unknown) is not None
    with key_lookups(harness) as lookups:
        response = await harness.client.get("/items", headers={"X-API-Key": unknown})
    assert_refused(response, unknown)
    assert any(entry.startswith("record:") for entry in lookups)
    assert any(entry.startswith("SELECT") for entry in lookups)


async def test_repeating_an_unknown_key_does_not_hammer_the_database(harness: Harness) -> None:
    unknown = new_api_key(new_key_id())
    started = time.monotonic()
    with key_lookups(harness) as lookups:
        for _ in range(20):
            assert_refused(
                await harness.client.get("/items", headers={"X-API-Key": unknown}), unknown
            )
    elapsed = time.monotonic() - started
    reads = [entry for entry in lookups if entry.startswith("SELECT")]
    assert len(reads) <= 1 + int(elapsed), (len(reads), elapsed)


@pytest.mark.parametrize("path", ["/auth/me", "/secure-data", "/auth/keys"])
async def test_malformed_keys_are_401_on_every_route_that_takes_keys(
    harness: Harness, path: str
) -> None:
    key = await make_key(harness)
    for sent in (flip(key, len(key) - 1), "", "bst_" + "A" * 10 * 1024):
        assert_refused(await harness.client.get(path, headers={"X-API-Key": sent}), sent)


async def test_a_guessed_secret_for_a_real_key_id_is_401(harness: Harness) -> None:
    """The id is not secret (lists show it); a key with that id, a fresh secret and a valid
    checksum passes the shape check and must still fail on the keyed hash."""
    key = await make_key(harness)
    parsed = parse_api_key(key)
    assert parsed is not None
    for _ in range(5):
        forged = new_api_key(parsed.key_id)
        assert forged != key
        assert_refused(await harness.client.get("/items", headers={"X-API-Key": forged}), forged)
    assert (await harness.client.get("/items", headers={"X-API-Key": key})).status_code == 200


async def test_a_key_only_works_in_the_api_key_header(harness: Harness) -> None:
    key = await make_key(harness)
    for headers in (
        {"Authorization": f"Bearer {key}"},
        {"Authorization": f"ApiKey {key}"},
        {"Authorization": key},
        {"Api-Key": key},
        {"Cookie": f"api_key={key}"},
    ):
        response = await harness.client.get("/items", headers=headers)
        assert_problem(response, 401)
        assert key not in response.text


async def test_a_key_is_bound_to_the_servers_secret(database_url: str, tmp_path: Path) -> None:
    """Only a keyed hash is stored: the same database under another ``BASTION_SECRET_KEY``
    (a stolen copy, say) cannot check keys."""
    async with open_harness(make_settings(database_url, tmp_path)) as first:
        key = await make_key(first)
        assert (await first.client.get("/items", headers={"X-API-Key": key})).status_code == 200
    other_secret = "another-secret-" + secrets.token_urlsafe(32)
    async with open_harness(
        make_settings(database_url, tmp_path, secret_key=other_secret)
    ) as second:
        response = await second.client.get("/items", headers={"X-API-Key": key})
        assert_refused(response, key)


async def test_another_users_key_id_cannot_be_revoked_or_rotated(harness: Harness) -> None:
    victim_key = await make_key(harness, "alice")
    attacker = await harness.user_with_token("mallory")
    parsed = parse_api_key(victim_key)
    assert parsed is not None
    for response in (
        await harness.client.delete(f"/auth/keys/{parsed.key_id}", headers=attacker),
        await harness.client.post(f"/auth/keys/{parsed.key_id}/rotate", headers=attacker),
    ):
        assert_problem(response, 404)
        assert "bst_" not in response.text
    assert (
        await harness.client.get("/items", headers={"X-API-Key": victim_key})
    ).status_code == 200


@pytest.mark.parametrize(
    "key_id",
    ["..%2F..%2Fetc", "' OR 1=1 --", "x" * 2000, "%00", "bst_abc", "%C3%A9"],
    ids=["traversal", "sql", "long", "nul", "prefix", "non-ascii"],
)
async def test_odd_key_ids_in_the_path_are_404_never_500(harness: Harness, key_id: str) -> None:
    headers = await harness.user_with_token("alice")
    for response in (
        await harness.client.delete(f"/auth/keys/{key_id}", headers=headers),
        await harness.client.post(f"/auth/keys/{key_id}/rotate", headers=headers),
    ):
        assert response.status_code in (404, 422), response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)


# --------------------------------------------------------------------------- entropy


def test_a_thousand_generated_keys_are_unique() -> None:
    keys = [new_api_key(new_key_id()) for _ in range(1000)]
    assert len(set(keys)) == 1000
    assert len({key[KEY_SHAPE_SECRET] for key in keys}) == 1000
    assert len({parse_api_key(key).key_id for key in keys}) == 1000


def test_the_secret_part_is_32_base62_characters_of_at_least_128_bits() -> None:
    keys = [new_api_key(new_key_id()) for _ in range(1000)]
    secrets_ = [key[KEY_SHAPE_SECRET] for key in keys]
    for secret in secrets_:
        assert len(secret) == 32
        assert set(secret) <= set(BASE62)
    assert 32 * math.log2(62) >= 128

    # Every base62 character turns up, none far more often than chance allows: 32,000 draws,
    # about 516 of each; 350..700 is more than seven standard deviations either way.
    counts = Counter("".join(secrets_))
    assert set(counts) == set(BASE62)
    assert all(350 <= n <= 700 for n in counts.values()), counts.most_common(3)


async def test_keys_issued_over_http_are_unique_and_well_formed(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    keys = set()
    for _ in range(20):
        response = await harness.client.post("/auth/keys", json={"name": "k"}, headers=headers)
        key = response.json()["key"]
        assert parse_api_key(key) is not None
        keys.add(key)
    assert len(keys) == 20
