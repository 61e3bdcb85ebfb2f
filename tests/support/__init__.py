"""Helpers shared by the tests: real brokers, databases, configs and waiting."""
