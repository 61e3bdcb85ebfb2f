"""The web application: REST API with OpenAPI, live alarm console, device board,
compliance and records pages, login and roles, ``/metrics``."""

from hub.web.server import WebService, create_app

__all__ = ["WebService", "create_app"]
