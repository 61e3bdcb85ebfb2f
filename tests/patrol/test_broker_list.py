"""``police.url`` names one broker or the nodes of a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError, parse_config
from tests.support.sites import site_dict


def _police(tmp_path: Path, url: object) -> dict:  # type: ignore[type-arg]
    data = site_dict(broker_url="mqtt://127.0.0.1:1883", data_dir=tmp_path)
    data["police"]["url"] = url
    return data


def test_a_list_and_a_comma_separated_string_are_the_same(tmp_path: Path) -> None:
    urls = ["mqtt://n1:1883", "mqtt://n2:1884", "mqtt://n3"]
    a = parse_config(_police(tmp_path, urls), env={}).police
    b = parse_config(_police(tmp_path, " , ".join(urls)), env={}).police
    assert a.urls == b.urls == urls
    assert a.endpoints == [("n1", 1883), ("n2", 1884), ("n3", 1883)]
    assert (a.host, a.port, a.use_tls) == ("n1", 1883, False)
    one = parse_config(_police(tmp_path, "mqtts://only:8883"), env={}).police
    assert one.urls == ["mqtts://only:8883"] and one.use_tls


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ([], "at least one"),
        (["mqtt://a:1883", "mqtts://b:8883"], "same scheme"),
        (["mqtt://a:1883", "http://b"], "mqtt://"),
        ("mqtt://a:1883,", "empty entry"),
        (["mqtt://u:p@a:1883"], "credentials"),
    ],
)
def test_bad_lists_are_refused_by_path(tmp_path: Path, url: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_police(tmp_path, url), env={})
    assert [p for p, _ in info.value.errors] == ["police.url"]
    assert message in str(info.value)


@pytest.mark.parametrize("site_id", ["a.b", "mall+1", "mall/1", "", "-lead"])
def test_site_ids_map_one_to_one_onto_nats_subjects(tmp_path: Path, site_id: str) -> None:
    data = site_dict(broker_url="mqtt://127.0.0.1:1883", data_dir=tmp_path, site_id=site_id)
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert "site.id" in [p for p, _ in info.value.errors]
