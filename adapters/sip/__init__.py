"""SIP pieces shared by the adapters that speak SIP (message model, digest authentication)."""
