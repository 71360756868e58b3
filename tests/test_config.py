"""acmeali.config: the example file loads and documents every key; errors name the key path."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from acmeali import config as cfg
from acmeali.aliyun.services import known_services
from acmeali.config import (
    LETSENCRYPT,
    LETSENCRYPT_STAGING,
    Config,
    default_state_dir,
    load_config,
    load_config_bytes,
)
from acmeali.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.toml"


def load(text: str) -> Config:
    return load_config_bytes(text.encode(), "test.toml")


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(text)
    assert info.value.exit_code == 2
    return info.value.message


# --------------------------------------------------------------------------- the example
def test_example_loads() -> None:
    c = load_config(str(EXAMPLE))
    assert c.source == str(EXAMPLE)
    assert c.acme.server == LETSENCRYPT
    assert c.acme.email == ("ops@example.com",)
    assert c.acme.eab_kid is None and c.acme.ca_bundle is None
    assert [x.name for x in c.certificates] == ["example.com", "example.org"]
    second = c.certificates[1]
    assert second.domains == ("*.example.org", "example.org")
    assert second.settings.challenge == "dns-01" and second.settings.key_type == "ec384"
    assert second.settings.http_port == 80  # inherited from [defaults]
    assert c.certificates[0].settings.deploy == ("cas", "cdn:static.example.com",
                                                 "hook:systemctl reload nginx")
    assert c.aliyun.cas_keep_previous == 1 and c.aliyun.endpoints == {}


def test_example_pins_nothing_that_differs_from_the_defaults() -> None:
    """Copying the example must not change the renewal rule or pin Alibaba endpoints
    (ux-review (b)#5/#6): with site/region switched, endpoints follow them."""
    from acmeali.aliyun.clients import endpoint_for

    c = load_config(str(EXAMPLE))
    assert c.renewal == cfg.RenewalSettings()
    assert c.defaults == cfg.CertSettings()
    assert c.aliyun == cfg.AliyunSettings()
    assert c.logging == cfg.LoggingSettings()
    text = EXAMPLE.read_text().replace('region = "cn-hangzhou"', 'region = "ap-southeast-1"')
    text = text.replace('site = "china"', 'site = "international"')
    intl = cfg.load_config_bytes(text.encode(), "intl.toml").aliyun
    assert endpoint_for("cas", intl) == "cas.ap-southeast-1.aliyuncs.com"
    assert endpoint_for("apigateway", intl) == "apigateway.ap-southeast-1.aliyuncs.com"
    assert endpoint_for("mqtt", intl) == "onsmqtt.ap-southeast-1.aliyuncs.com"
    assert endpoint_for("apigateway", intl, "cn-shanghai") == "apigateway.cn-shanghai.aliyuncs.com"


def test_example_documents_every_key() -> None:
    # Keys whose default is "unset" are documented commented out: count them too.
    text = re.sub(r"(?m)^# (\[aliyun\.endpoints\]|\[dns\.[a-z0-9]+\]|[a-z_]+ = .*)$", r"\1",
                  EXAMPLE.read_text())
    raw = tomllib.loads(text)
    assert set(raw) == set(cfg._TOP_KEYS)
    assert set(raw["acme"]) == set(cfg._ACME_KEYS)
    assert set(raw["defaults"]) == set(cfg._CERT_KEYS)
    assert set(raw["renewal"]) == set(cfg._RENEWAL_KEYS)
    assert set(raw["aliyun"]) == set(cfg._ALIYUN_KEYS) | {"endpoints", "cas"}
    assert set(raw["aliyun"]["endpoints"]) == set(known_services())
    assert set(raw["aliyun"]["cas"]) == set(cfg._CAS_KEYS)
    assert set(raw["logging"]) == set(cfg._LOGGING_KEYS)
    from acmeali.solvers import registry

    for name in registry.PROVIDERS:  # every provider's table, every key of it
        keys = set(registry.provider_class(name).options)
        assert set(raw["dns"].get(name, {})) == keys, name
    assert {"name", "domains"} <= set(raw["certificates"][0])
    # Every key line has a comment right above it (or belongs to a commented group).
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            j = i - 1
            while j >= 0 and re.match(r"^[a-z_]+ = ", lines[j]):
                j -= 1
            assert lines[j].startswith(("#", "[")), f"no comment for: {line}"


def test_example_keys_are_in_configuration_doc() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    keys = (set(cfg._ACME_KEYS) | set(cfg._CERT_KEYS) | set(cfg._RENEWAL_KEYS)
            | set(cfg._ALIYUN_KEYS) | set(cfg._CAS_KEYS) | set(known_services())
            | set(cfg._LOGGING_KEYS)
            | {"state_dir", "name", "domains"})
    from acmeali.solvers import registry

    for name in registry.PROVIDERS:  # [dns.<provider>] keys
        keys |= set(registry.provider_class(name).options)
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"docs/configuration.md does not document {missing}"


# --------------------------------------------------------------------------- defaults
def test_empty_config_is_all_defaults() -> None:
    c = load("")
    assert c == Config(source="test.toml")
    assert c.defaults.key_type == "ec256" and c.defaults.challenge == "http-01"
    assert c.renewal.days_before_expiry is None and c.renewal.keep_versions == 5


def test_aliases_and_coercions() -> None:
    c = load('state_dir = "/srv/acme"\n[acme]\nserver = "letsencrypt-staging"\n'
             'email = "mailto:a@example.com"\ntimeout = 5\n')
    assert c.state_dir == "/srv/acme"
    assert c.acme.server == LETSENCRYPT_STAGING
    assert c.acme.email == ("a@example.com",)
    assert c.acme.timeout == 5.0 and isinstance(c.acme.timeout, float)


def test_certificate_inherits_and_overrides_defaults() -> None:
    c = load('[defaults]\nkey_type = "rsa2048"\ndeploy = ["cas"]\n'
             '[[certificates]]\ndomains = ["A.Example.com", "a.example.com", "bücher.example"]\n'
             '[[certificates]]\nname = "second"\ndomains = ["b.example.com"]\n'
             'key_type = "ec384"\n')
    first, second = c.certificates
    assert first.name == "a.example.com"
    assert first.domains == ("a.example.com", "xn--bcher-kva.example")
    assert first.settings.key_type == "rsa2048" and first.settings.deploy == ("cas",)
    assert second.name == "second" and second.settings.key_type == "ec384"
    assert c.certificate("second") is second and c.certificate("nope") is None


def test_wildcard_lineage_name_drops_star() -> None:
    c = load('[[certificates]]\ndomains = ["*.example.com"]\nchallenge = "dns-01"\n'
             'dns = "alidns"\n')
    assert c.certificates[0].name == "example.com"


# --------------------------------------------------------------------------- errors
CERTS3 = ('[[certificates]]\ndomains = ["a.example.com"]\n'
          '[[certificates]]\ndomains = ["b.example.com"]\n')


@pytest.mark.parametrize("text,path,expect", [
    (CERTS3 + '[[certificates]]\ndomains = ["a..example.com"]\n',
     "certificates[2].domains[0]", "empty label"),
    (CERTS3 + '[[certificates]]\ndomains = ["ok.example.com", "-bad.example.com"]\n',
     "certificates[2].domains[1]", "hyphen"),
    (CERTS3 + '[[certificates]]\ndomains = ["x.example.com"]\nhttp_port = 0\n',
     "certificates[2].http_port", "from 1 to 65535"),
    (CERTS3 + '[[certificates]]\ndomains = ["x.example.com"]\nkey_typ = "ec256"\n',
     "certificates[2].key_typ", "unknown key"),
    (CERTS3 + '[[certificates]]\ndomains = []\n', "certificates[2].domains", "empty"),
    (CERTS3 + '[[certificates]]\nname = "n"\n', "certificates[2].domains", "missing"),
    (CERTS3 + '[[certificates]]\ndomains = ["a.example.com"]\n',
     "certificates[2].name", "duplicate lineage name"),
    (CERTS3 + '[[certificates]]\nname = "../x"\ndomains = ["c.example.com"]\n',
     "certificates[2].name", "not usable as a lineage name"),
    (CERTS3 + '[[certificates]]\ndomains = ["*.example.com"]\n',
     "certificates[2].challenge", "http-01 cannot"),
    (CERTS3 + '[[certificates]]\ndomains = ["c.example.com"]\nchallenge = "dns-01"\n',
     "certificates[2].dns_hook", "needs dns_hook"),
    (CERTS3 + '[[certificates]]\ndomains = ["c.example.com"]\ndeploy = ["ftp:x"]\n',
     "certificates[2].deploy[0]", "unknown kind 'ftp'"),
    (CERTS3 + '[[certificates]]\ndomains = ["c.example.com"]\ndns_resolvers = ["8.8.8.8"]\n',
     "certificates[2].dns_resolvers[0]", "HOST:PORT"),
    (CERTS3 + '[[certificates]]\ndomains = "c.example.com"\nreuse_key = "yes"\n',
     "certificates[2].reuse_key", "true or false"),
    ('certificates = "x"\n', "certificates", "array of tables"),
    ('[acme]\nemail = ["ops@example.com", "nobody"]\n', "acme.email[1]", "not an e-mail"),
    ('[acme]\nserver = "http://ca.example/dir"\n', "acme.server", "https://"),
    ('[acme]\neab_hmac_key = "abc"\n', "acme.eab_kid", "required too"),
    ('[acme]\ntimeout = true\n', "acme.timeout", "expected a number, got boolean"),
    ('[defaults]\nkey_type = "rsa1024"\n', "defaults.key_type", "one of ec256"),
    ('[defaults]\ndns_ttl = 1.5\n', "defaults.dns_ttl", "expected an integer, got number"),
    ('[renewal]\nconcurrency = 100\n', "renewal.concurrency", "from 1 to 64"),
    ('[aliyun]\nsite = "mars"\n', "aliyun.site", "china, international"),
    ('[aliyun.endpoints]\nsms = "x"\n', "aliyun.endpoints.sms", "unknown endpoint"),
    ('[aliyun.endpoints]\ncas = "https://cas.aliyuncs.com"\n', "aliyun.endpoints.cas",
     "without scheme"),
    ('[aliyun]\nprotocol = "http"\n[aliyun.endpoints]\ncas = "cas.aliyuncs.com"\n',
     "aliyun.endpoints.cas", "only for loopback"),
    ('[aliyun]\nprotocol = "http"\n', "aliyun.protocol", "only together with loopback"),
    ('[aliyun.cas]\nkeep_previous = -1\n', "aliyun.cas.keep_previous", "from 0 to 1000"),
    ('acme = 3\n', "acme", "expected a table"),
    ('colour = "blue"\n', "colour", "unknown key"),
])
def test_errors_name_the_key_path(text: str, path: str, expect: str) -> None:
    msg = error_of(text)
    assert msg.startswith(f"test.toml: {path}: "), msg
    assert expect in msg, msg


def test_loopback_http_endpoints_are_allowed() -> None:
    c = load('[aliyun]\nprotocol = "http"\n[aliyun.endpoints]\ncas = "127.0.0.1:8080"\n'
             'cdn = "[::1]:9000"\nmqtt = "localhost:1"\n')
    assert c.aliyun.protocol == "http" and c.aliyun.endpoints["cdn"] == "[::1]:9000"


def test_syntax_and_encoding_errors() -> None:
    assert "not valid TOML" in error_of("[acme\n")
    with pytest.raises(ConfigError, match=r"not UTF-8"):
        load_config_bytes(b"\xff\xfe", "bin.toml")


def test_check_lineage_name() -> None:
    assert cfg.check_lineage_name("ok.example") == "ok.example"
    with pytest.raises(ConfigError, match=r"--name"):
        cfg.check_lineage_name("a/b")


# --------------------------------------------------------------------------- lookup order
@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(path: Path, server: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[acme]\nserver = "https://{server}/dir"\n')
    return path


def test_lookup_order(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = Path(os.environ["XDG_CONFIG_HOME"])
    assert load_config().source is None  # nothing anywhere: defaults
    _write(xdg / "acmeali" / "config.toml", "xdg.example")
    assert load_config().acme.server == "https://xdg.example/dir"
    _write(in_tmp / "acmeali.toml", "cwd.example")
    assert load_config().acme.server == "https://cwd.example/dir"
    env = _write(in_tmp / "env.toml", "env.example")
    monkeypatch.setenv("ACMEALI_CONFIG", str(env))
    assert load_config().acme.server == "https://env.example/dir"
    flag = _write(in_tmp / "flag.toml", "flag.example")
    assert load_config(str(flag)).acme.server == "https://flag.example/dir"


def test_named_file_must_exist(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"missing.toml does not exist"):
        load_config(str(in_tmp / "missing.toml"))
    monkeypatch.setenv("ACMEALI_CONFIG", str(in_tmp / "gone.toml"))
    with pytest.raises(ConfigError, match=r"gone.toml does not exist"):
        load_config()
    with pytest.raises(ConfigError, match=r"cannot read config file"):
        load_config(str(in_tmp))  # a directory


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACMEALI_STATE_DIR", str(tmp_path / "s"))
    assert default_state_dir() == tmp_path / "s"
    monkeypatch.delenv("ACMEALI_STATE_DIR")
    expected = (Path("/var/lib/acmeali") if os.geteuid() == 0
                else Path(os.environ["XDG_DATA_HOME"]) / "acmeali")
    assert default_state_dir() == expected
