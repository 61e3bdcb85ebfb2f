"""Device drivers. They never import the hub: the hub hands them callbacks."""
