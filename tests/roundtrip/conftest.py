"""Fixtures of the round trip: one nats-server with JetStream and MQTT (tests/support/nats.py)."""

from tests.support.nats import nats_node

__all__ = ["nats_node"]
