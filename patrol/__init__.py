"""The police side: a service that supervises many malls' hubs through NATS JetStream."""
