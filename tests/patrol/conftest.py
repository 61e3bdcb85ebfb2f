"""Fixtures of the police side: real nats-server nodes and clusters."""

from tests.support.nats import nats_cluster, nats_node

__all__ = ["nats_cluster", "nats_node"]
