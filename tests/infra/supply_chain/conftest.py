"""A loopback registry (Debian's docker-registry) and two signing keys for the signature tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.tools.image.registry_server import Registry, serve
from tests.infra.supply_chain.signing_kit import Key


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with serve(tmp_path_factory.mktemp("signatures-registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    """The signer the tests configure."""
    return Key.make(tmp_path_factory.mktemp("keys"), "ours")


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    """Someone else's key."""
    return Key.make(tmp_path_factory.mktemp("keys"), "theirs")
