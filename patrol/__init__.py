"""The police side: the online inspection (网上巡查) service that supervises many malls through NATS JetStream."""
