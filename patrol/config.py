"""The patrol service's configuration: one YAML file, ``${VAR}`` from the environment.

```yaml
nats:
  servers: [nats://nats-1:4222, nats://nats-2:4222, nats://nats-3:4222]
  username: patrol
  password: ${PATROL_NATS_PASSWORD}
  replicas: 3
database_url: ${PATROL_DATABASE_URL}
workers: 2
http: {host: 0.0.0.0, port: 8090}
malls:
  - {site_id: zz-jinshui-001, name: 郑州金水国际购物中心, district: 金水区}
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.config import ConfigError, substitute_env

SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
"""A site id is one MQTT topic level and one NATS subject token: no '.', no wildcards."""
SITE_ID_RULE = "1-64 letters, digits, '-' or '_', starting with a letter or digit (no '.')"


def valid_site_id(site_id: object) -> bool:
    return isinstance(site_id, str) and SITE_ID.fullmatch(site_id) is not None


def console_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) address with nothing but a host and a port (an
    optional trailing ``/``), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if (
        parts.scheme not in ("http", "https")
        or not host
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or not url.isascii()
    ):
        return None
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
METRICS_TOKEN_MIN = 16


def metrics_token(config: PatrolConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token /metrics asks for, or None when the configuration names none or the
    variable it names is unset or too short (then /metrics stays off)."""
    name = config.metrics_token_env
    if name is None:
        return None
    token = (os.environ if env is None else env).get(name, "")
    return token if len(token) >= METRICS_TOKEN_MIN else None


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NatsTls(Model):
    ca_file: Path | None = Field(default=None, description="CA bundle for the servers.")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM).")
    key_file: Path | None = Field(default=None, description="Client key (PEM).")


class Nats(Model):
    servers: list[str] = Field(min_length=1, description="nats:// or tls:// of every node.")
    username: str | None = Field(default=None, description="NATS user of the patrol service.")
    password: SecretStr | None = Field(default=None, description="Its password (use ${VAR}).")
    tls: NatsTls | None = Field(default=None, description="TLS to the servers.")
    stream: str = Field(default="MALLHUB", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    replicas: int = Field(default=1, ge=1, le=5, description="JetStream replicas of the stream.")
    durable: str = Field(default="patrol", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    max_age_days: float = Field(default=30, gt=0, description="How long the stream keeps.")

    @field_validator("servers", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return [s.strip() for s in v.split(",")] if isinstance(v, str) else v

    @field_validator("servers")
    @classmethod
    def _check(cls, v: list[str]) -> list[str]:
        for url in v:
            parts = urlsplit(url)
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise ValueError(f"{url!r}: must be nats://host:port or tls://host:port")
            if parts.username or parts.password:
                raise ValueError("put credentials in username/password, not in the URL")
        return v


class Http(Model):
    host: str = Field(default="127.0.0.1", description="Address the web app listens on.")
    port: int = Field(default=8090, ge=0, le=65535, description="0 picks a free port.")


class Mall(Model):
    site_id: str = Field(description=SITE_ID_RULE)
    name: str = Field(default="", max_length=200)
    district: str = Field(default="", max_length=100, description="e.g. 金水区")
    console_url: str | None = Field(
        default=None,
        max_length=200,
        description="The mall hub's console as the police reach it, http(s)://host[:port] "
        "(its http.public_url). Pictures the hub sends as URLs are fetched only from this "
        "scheme, host and port; without it they are not fetched.",
    )

    @field_validator("site_id")
    @classmethod
    def _site(cls, v: str) -> str:
        if not valid_site_id(v):
            raise ValueError(f"a site id has {SITE_ID_RULE}")
        return v

    @field_validator("console_url")
    @classmethod
    def _console(cls, v: str | None) -> str | None:
        if v is not None and console_origin(v) is None:
            raise ValueError("must be http://host[:port] or https://host[:port], nothing more")
        return v


class Inspections(Model):
    """Online inspections (网上巡查) and rectification notices (整改通知)."""

    hub_timeout_s: int = Field(
        default=30, ge=1, le=120, description="The time a hub is given to gather its evidence."
    )
    answer_timeout_s: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="A hub that has not answered an inspection within this gets a record "
        "saying so (a finding of its own).",
    )
    schedule: Literal["off", "weekly", "monthly"] = Field(
        default="off", description="Inspect every mall once per week or month, at a random time."
    )
    schedule_seed: SecretStr = Field(
        default=SecretStr(""),
        description="Keeps the scheduled times unpredictable to the malls (use ${VAR}).",
    )
    schedule_hours: tuple[int, int] = Field(
        default=(9, 17), description="Scheduled inspections start between these hours (UTC+8)."
    )
    scheduled_by: str = Field(
        default="定期巡查", min_length=1, max_length=64, description="Officer of a scheduled one."
    )
    unit: str = Field(
        default="", max_length=128, description="The police unit named in notices (金水分局)."
    )
    notice_days: int = Field(
        default=7, ge=1, le=365, description="The deadline the notice form proposes."
    )

    @model_validator(mode="after")
    def _check(self) -> Inspections:
        if self.answer_timeout_s <= self.hub_timeout_s:
            raise ValueError("answer_timeout_s must be longer than hub_timeout_s")
        start, end = self.schedule_hours
        if not 0 <= start < end <= 24:
            raise ValueError("schedule_hours is [start, end] with 0 <= start < end <= 24")
        return self


class PatrolConfig(Model):
    nats: Nats
    database_url: SecretStr = Field(description="postgresql+asyncpg://… or sqlite+aiosqlite:///…")
    workers: int = Field(default=1, ge=1, le=64, description="Consumer tasks in this process.")
    batch: int = Field(default=256, ge=1, le=5000, description="Messages fetched at once.")
    http: Http = Field(default_factory=Http)
    receipt_by: str = Field(default="patrol", max_length=64, description="'by' in receipts.")
    malls: list[Mall] = Field(default_factory=list, description="Known malls and districts.")
    inspections: Inspections = Field(default_factory=Inspections)
    metrics_token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="Name of the environment variable holding the bearer token of /metrics "
        f"(at least {METRICS_TOKEN_MIN} characters); without it /metrics answers 404.",
    )

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: SecretStr) -> SecretStr:
        scheme = v.get_secret_value().split(":", 1)[0]
        if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError("use postgresql+asyncpg://… or sqlite+aiosqlite:///…")
        return v


def parse_patrol_config(data: Any, env: Mapping[str, str] | None = None) -> PatrolConfig:
    if not isinstance(data, dict):
        raise ConfigError([("(root)", "the file must contain a mapping (key: value)")])
    errors: list[tuple[str, str]] = []
    data = substitute_env(data, os.environ if env is None else env, errors=errors)
    if errors:
        raise ConfigError(errors)
    try:
        config = PatrolConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                (
                    ".".join(str(p) for p in e["loc"]) or "(root)",
                    e["msg"].removeprefix("Value error, "),
                )
                for e in exc.errors()
            ]
        ) from exc
    if config.metrics_token_env is not None and metrics_token(config, env) is None:
        raise ConfigError(
            [
                (
                    "metrics_token_env",
                    f"the environment variable {config.metrics_token_env} is unset or "
                    f"shorter than {METRICS_TOKEN_MIN} characters",
                )
            ]
        )
    return config


def load_patrol_config(path: str | Path, env: Mapping[str, str] | None = None) -> PatrolConfig:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([(str(p), f"cannot read: {exc.strerror or exc}")]) from exc
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([(str(p), f"not a UTF-8 YAML file: {type(exc).__name__}")]) from exc
    return parse_patrol_config(data, env)
