"""Optional TLS on the listener: HTTPS, the Secure cookie flag and HSTS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.broker import LocalMosquitto
from tests.support.sites import site_dict
from tests.web.webtest import PASSWORD, web_hub


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "web.crt", tmp / "web.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_https_listener_sets_secure_cookies(broker: LocalMosquitto, tmp_path: Path) -> None:
    from hub.config import parse_config

    cert, key = self_signed(tmp_path)
    d = site_dict(broker_url=broker.url, data_dir=tmp_path)
    d["http"] = {"port": 0, "tls_cert_file": str(cert), "tls_key_file": str(key)}
    cfg = parse_config(d, env={})
    async with web_hub(cfg, broker.url) as wh:
        assert wh.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        login = {"name": "viewer", "password": PASSWORD}
        connector = aiohttp.TCPConnector(ssl=ctx)
        async with (
            aiohttp.ClientSession(wh.url, connector=connector) as s,
            s.post("/api/v1/session", json=login) as r,
        ):
            assert r.status == 200
            assert "Secure" in r.headers["Set-Cookie"]
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
