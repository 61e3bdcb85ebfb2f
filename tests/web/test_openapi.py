"""The OpenAPI document, the handlers and docs/api.md agree, and a property-based fuzz of
the API from its document (schemathesis) finds no 5xx and no response outside it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from hub.web.api import ENDPOINTS
from hub.web.openapi import document, markdown
from hub.web.server import create_app
from tests.web.webtest import WebHub

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PAGES = {
    "/",
    "/login",
    "/logout",
    "/lang/{lang}",
    "/console",
    "/devices",
    "/events",
    "/events/{event_id}",
    "/compliance",
    "/records",
    "/notices",
    "/notices/{notice_id}",
}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    app = create_app(deps=None)  # type: ignore[arg-type]  # routes only; never served
    served: set[tuple[str, str]] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method == "HEAD" or path is None or path.startswith("/static"):
            continue
        if path in PAGES:
            continue
        served.add((route.method, path))
    doc = document()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    # Every operation names its security and lists the error answers its guard can give.
    for p, ops in doc["paths"].items():
        for m, op in ops.items():
            assert "security" in op, (m, p)
            if op["security"]:
                assert {"401", "403"} <= set(op["responses"]), (m, p)


def test_docs_api_md_is_generated_from_the_route_table() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert text == markdown(), "docs/api.md is stale: python -m hub.web.openapi > docs/api.md"
    for ep in ENDPOINTS:
        assert f"## {ep.method} `{ep.path}`" in text


async def test_openapi_document_is_served_and_matches(wh: WebHub) -> None:
    import aiohttp

    async with aiohttp.ClientSession(wh.url) as s:
        async with s.get("/api/v1/openapi.json") as r:
            assert r.status == 401
        async with s.get(
            "/api/v1/openapi.json", headers={"Authorization": f"Bearer {wh.tokens['viewer']}"}
        ) as r:
            served = await r.json()
    assert served == document(wh.hub.config)
    assert served["openapi"] == "3.1.0"


@pytest.mark.slow
async def test_schemathesis_fuzz_finds_no_server_errors_or_violations(
    wh: WebHub, tmp_path: Path
) -> None:
    """Runs the schemathesis CLI against the live hub (as admin, so every operation is
    reached) while this test's event loop keeps serving it."""
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(document(wh.hub.config)), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        # ignored_auth sends a made-up session cookie next to our valid Bearer header and
        # takes the 200 as "auth ignored"; rejection of bad credentials is proven directly in
        # test_security.py for every endpoint.
        "[checks.ignored_auth]\nenabled = false\n"
        # A well-formed request breaking a rule the schema cannot state (a date in the
        # future, a deadline before the finding) is answered 422, which the document lists.
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]\n',
        encoding="utf-8",
    )
    st = Path(sys.executable).with_name("st")
    args = [
        str(st),
        "--config-file",
        str(config),
        "run",
        str(schema),
        "--url",
        wh.url,
        "-H",
        f"Authorization: Bearer {wh.tokens['admin']}",
        # The live stream never ends by design; it is covered by the API and browser tests.
        "--exclude-path",
        "/api/v1/live",
        "--max-examples",
        os.environ.get("MALLHUB_FUZZ_EXAMPLES", "25"),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "7",
        "--workers",
        "1",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-junit-path",
        str(ARTIFACTS / "schemathesis-junit.xml"),
        "--no-color",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    (ARTIFACTS / "schemathesis.txt").write_text(text, encoding="utf-8")
    assert proc.returncode == 0, text[-6000:]
