"""mallhub: the alarm and CCTV integration hub."""

__version__ = "0.1.0"
