"""Device and police-platform simulators. They import neither hub nor adapters."""
