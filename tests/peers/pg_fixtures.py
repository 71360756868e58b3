"""pytest fixtures for the PostgreSQL peer: one server per session, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.postgres import Postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with Postgres() as pg:
        yield pg


@pytest.fixture
def pg_dsn(postgres: Postgres) -> str:
    """The DSN of a new, empty database on the session's server."""
    return postgres.create_database()
