"""A real hub with its web server, a police simulator and users of every role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hub.app import Hub
from hub.config import SiteConfig
from hub.web.auth import CreateToken, CreateUser, hash_password, new_token, token_hash
from simulators.police import PolicePlatform
from tests.e2e.hubtest import police_and_hub

ROLES = ("viewer", "operator", "technician", "admin")
PASSWORD = "correct horse battery"  # test-only
# Cheaper scrypt for test users (the cost travels in the hash; production uses the default).
FAST = {"n": 2**10, "r": 8, "p": 1}


@dataclass
class WebHub:
    hub: Hub
    police: PolicePlatform
    url: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def site(self) -> str:
        return self.hub.config.site.id


async def add_users(hub: Hub) -> dict[str, str]:
    """A user per role (named after it) and an API token for each."""
    tokens = {}
    for role in ROLES:
        await hub.submit(CreateUser(role, role, hash_password(PASSWORD, **FAST), "test"))  # type: ignore[arg-type]
        token = new_token()
        await hub.submit(CreateToken(role, f"{role}-token", token_hash(token), "test"))
        tokens[role] = token
    return tokens


@asynccontextmanager
async def web_hub(cfg: SiteConfig, broker_url: str) -> AsyncIterator[WebHub]:
    async with police_and_hub(cfg, broker_url) as (police, hub):
        tokens = await add_users(hub)
        yield WebHub(hub, police, hub.web.url, tokens)


class Browserless:
    """An HTTP client that logs in like the pages do (cookie + CSRF header)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf: str | None = None

    async def __aenter__(self) -> Browserless:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.session.close()

    async def login(self, name: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        r = await self.session.post("/api/v1/session", json={"name": name, "password": password})
        if r.status == 200:
            self.csrf = (await r.json())["csrf_token"]
        return r

    def headers(self, csrf: bool = True) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
