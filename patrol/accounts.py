"""NATS users for a city: one per mall, each confined to its own site's subjects.

A mall's hub logs in (MQTT user name and password) as its site id. It may publish only
under ``mallhub.v1.<site>.>`` — never on its own ``commands`` or ``receipts``, which only
the platform writes — and receive only its own commands and receipts. The patrol service
has its own user with every right it needs. MQTT topics map to NATS subjects with '/' →
'.', which is why a site id must not contain '.' (``patrol.config.SITE_ID``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from patrol.config import SITE_ID_RULE, valid_site_id
from patrol.natsnode import NatsUser, user_entry

# The MQTT listener of nats-server works through JetStream on the client's behalf: QoS 1
# subscriptions and persistent sessions need these internal subjects.
MQTT_INTERNAL_SUB = ["$MQTT.sub.>"]


def mall_user(site_id: str, password: str) -> NatsUser:
    if not valid_site_id(site_id):
        raise ValueError(f"{site_id!r}: a site id has {SITE_ID_RULE}")
    p = f"mallhub.v1.{site_id}"
    return NatsUser(
        name=site_id,
        password=password,
        publish=[f"{p}.>"],
        publish_deny=[f"{p}.commands.>", f"{p}.receipts"],
        subscribe=[f"{p}.commands.>", f"{p}.receipts", *MQTT_INTERNAL_SUB],
    )


def patrol_user(name: str, password: str) -> NatsUser:
    return NatsUser(name=name, password=password, admin=True)


def env_name(site_id: str) -> str:
    return "MALLHUB_NATS_PW_" + re.sub(r"[^A-Z0-9]", "_", site_id.upper())


def authorization(sites: list[str], patrol: str = "patrol") -> str:
    """A nats-server ``authorization`` block whose passwords come from the environment of
    nats-server (``$MALLHUB_NATS_PW_<SITE>``, ``$PATROL_NATS_PASSWORD``)."""
    lines = [f"    {user_entry(patrol_user(patrol, ''), '$PATROL_NATS_PASSWORD')}"]
    for site in sites:
        lines.append(f"    {user_entry(mall_user(site, ''), '$' + env_name(site))}")
    return "authorization {\n  users: [\n" + ",\n".join(lines) + "\n  ]\n}\n"


def accounts_main(args: argparse.Namespace) -> int:
    try:
        text = Path(args.malls).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"mallhub patrol nats-accounts: cannot read {args.malls}: {exc}", file=sys.stderr)
        return 2
    sites = [line.strip() for line in text.splitlines() if line.strip()]
    bad = [s for s in sites if not valid_site_id(s)]
    if bad:
        print(
            f"mallhub patrol nats-accounts: {bad[0]!r} is not a valid site id ({SITE_ID_RULE})",
            file=sys.stderr,
        )
        return 2
    if len(set(sites)) != len(sites):
        print("mallhub patrol nats-accounts: a site id is listed twice", file=sys.stderr)
        return 2
    print(authorization(sites, args.patrol_user), end="")
    return 0
