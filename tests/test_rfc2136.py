"""``--dns rfc2136`` against a real BIND (Debian ``bind9``) on loopback, with a Pebble whose
validation authority resolves through that BIND: a wildcard + apex certificate is issued
by dynamic updates signed with TSIG, and the records are gone afterwards (asked of BIND).
The TSIG secret never shows in output, not even with ``-v``, and never reaches a hook.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from acmeali.config import CertSettings
from acmeali.errors import ChallengeError, ConfigError, UsageError
from acmeali.solvers import check_supported, make_solver
from acmeali.solvers.registry import ProviderEnv, TxtRecord
from acmeali.solvers.rfc2136 import ALGORITHMS, Rfc2136
from acmeali.ui import UI
from tests.conftest import run_acmeali
from tests.peers.bind import Bind
from tests.peers.pebble import Pebble, PebbleOptions, free_port
from tests.test_config import load

ZONE = "rfc2136.test"
# Every algorithm dnspython signs with, each as its own key in BIND.
EXTRA_KEYS = {f"key-{alg}": (alg, base64.b64encode(os.urandom(32)).decode())
              for alg in ALGORITHMS if alg != "hmac-sha256"}

RECORD_ENV = r'''
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(dict(os.environ)) + "\n")
'''


@pytest.fixture(scope="module")
def bind() -> Iterator[Bind]:
    with Bind(zones=(ZONE, "other.test"), extra_keys=EXTRA_KEYS) as b:
        yield b


@pytest.fixture(scope="module")
def bind_pebble(bind: Bind, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """A Pebble whose VA resolves through BIND (what a public CA does via the NS records)."""
    with Pebble(tmp_path_factory.mktemp("pebble-bind"),
                PebbleOptions(dns_server=bind.address)) as p:
        yield p


def _secret_file(tmp_path: Path, secret: str) -> Path:
    path = tmp_path / "tsig.secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


def _config(tmp_path: Path, pebble: Pebble, body: str) -> dict[str, str]:
    config = tmp_path / "acmeali.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[acme]\nserver = "{pebble.directory_url}"\nca_bundle = "{pebble.ca_bundle}"\n'
        'email = ["ops@example.test"]\nagree_tos = true\n' + body)
    return {"ACMEALI_CONFIG": str(config)}


def _sans(tmp_path: Path, name: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(
        (tmp_path / "state" / "live" / name / "cert.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName))


def test_wildcard_and_apex_issued_through_bind(tmp_path: Path, bind: Bind,
                                               bind_pebble: Pebble) -> None:
    challenge = f"_acme-challenge.{ZONE}"
    bind.add_txt(challenge, "someone-elses-value")  # must survive our cleanup
    secret_file = _secret_file(tmp_path, bind.secret)
    env = _config(tmp_path, bind_pebble,
                  f'[defaults]\ndns_resolvers = ["{bind.address}"]\ndns_timeout = 60\n'
                  f'[dns.rfc2136]\nserver = "{bind.address}"\n'
                  f'tsig_key_name = "{bind.key_name}"\ntsig_secret_file = "{secret_file}"\n')
    hook_log = tmp_path / "hook-env.jsonl"
    script = tmp_path / "record.py"
    script.write_text(RECORD_ENV)
    deploy_hook = " ".join(shlex.quote(a) for a in (sys.executable, str(script), str(hook_log)))
    # The secret also in the environment: a hook must not inherit it from us.
    r = run_acmeali("-vv", "issue", "-d", ZONE, "-d", f"*.{ZONE}", "--dns", "rfc2136",
                    "--deploy-hook", deploy_hook,
                    env={**env, "ACMEALI_TSIG_SECRET": bind.secret})
    assert r.returncode == 0, r.stderr
    assert _sans(tmp_path, ZONE) == [f"*.{ZONE}", ZONE]
    assert bind.txt(challenge) == {"someone-elses-value"}  # ours removed, theirs kept
    assert f"rfc2136: added TXT {challenge} at {bind.address}" in r.stderr  # logs were on
    assert bind.secret not in r.stdout + r.stderr
    (hook_env,) = [json.loads(line) for line in hook_log.read_text().splitlines()]
    assert "ACMEALI_TSIG_SECRET" not in hook_env
    assert bind.secret not in json.dumps(hook_env)
    # The updates were signed, approved and applied by BIND itself (its log says so).
    log = bind.log_text()
    assert f'signer "{bind.key_name}" approved' in log
    assert f"updating zone '{ZONE}/IN': adding an RR at '{challenge}' TXT" in log
    assert f"updating zone '{ZONE}/IN': deleting an RR at {challenge} TXT" in log


def test_certificate_table_overrides_and_secret_from_env(tmp_path: Path, bind: Bind,
                                                         bind_pebble: Pebble) -> None:
    dead = f"127.0.0.1:{free_port()}"
    name = f"www.{ZONE}"
    env = _config(tmp_path, bind_pebble,
                  f'[defaults]\ndns_resolvers = ["{bind.address}"]\ndns_timeout = 60\n'
                  f'[dns.rfc2136]\nserver = "{dead}"\ntsig_key_name = "wrong-key"\n'
                  f'[[certificates]]\ndomains = ["{name}"]\nchallenge = "dns-01"\n'
                  'dns = "rfc2136"\n'
                  f'rfc2136 = {{ server = "{bind.address}", tsig_key_name = "key-hmac-sha512", '
                  'tsig_algorithm = "hmac-sha512" }\n')
    secret = EXTRA_KEYS["key-hmac-sha512"][1]
    r = run_acmeali("issue", "--name", name, env={**env, "ACMEALI_TSIG_SECRET": secret})
    assert r.returncode == 0, r.stderr
    assert _sans(tmp_path, name) == [name]
    assert bind.txt(f"_acme-challenge.{name}") == set()
    # Renewal from the record and the config: the same override applies.
    r = run_acmeali("renew", "--force", env={**env, "ACMEALI_TSIG_SECRET": secret})
    assert r.returncode == 0, r.stderr


def _provider(bind: Bind, tmp_path: Path, key: str, algorithm: str, secret: str) -> Rfc2136:
    options = {"server": bind.address, "tsig_key_name": key, "tsig_algorithm": algorithm,
               "tsig_secret_file": str(_secret_file(tmp_path, secret))}
    return Rfc2136(options, ProviderEnv(settings=CertSettings(), ui=UI()))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_tsig_algorithm_signs_updates_bind_accepts(tmp_path: Path, bind: Bind,
                                                         algorithm: str) -> None:
    key, secret = ((bind.key_name, bind.secret) if algorithm == "hmac-sha256"
                   else (f"key-{algorithm}", EXTRA_KEYS[f"key-{algorithm}"][1]))
    provider = _provider(bind, tmp_path, key, algorithm, secret)
    fqdn = f"_acme-challenge.alg-{algorithm}.other.test"
    record = TxtRecord(identifier=fqdn[16:], name=fqdn, fqdn=fqdn, value=f"v-{algorithm}",
                       ttl=60)
    assert provider.zone_of(fqdn) == "other.test"  # by SOA, not by guessing
    assert provider.add_txt(record) == {"zone": "other.test"}
    assert bind.txt(fqdn) == {f"v-{algorithm}"}
    provider.remove_txt(record, {})
    assert bind.txt(fqdn) == set()


def test_wrong_secret_is_one_clear_line_without_the_secret(tmp_path: Path, bind: Bind) -> None:
    wrong = base64.b64encode(b"not the key" * 3).decode()
    provider = _provider(bind, tmp_path, bind.key_name, "hmac-sha256", wrong)
    fqdn = f"_acme-challenge.wrong.{ZONE}"
    with pytest.raises(ChallengeError) as info:
        provider.add_txt(TxtRecord(fqdn[16:], fqdn, fqdn, "x", 60))
    text = info.value.render()
    assert "TSIG" in text and "tsig_key_name" in text
    assert wrong not in text and wrong not in repr(provider)
    assert bind.txt(fqdn) == set()


def test_missing_or_bad_secret_is_a_usage_error(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CertSettings(challenge="dns-01", dns="rfc2136", dns_options={
        "rfc2136": {"server": "127.0.0.1:53", "tsig_key_name": "k"}})
    with pytest.raises(UsageError, match="needs the TSIG secret"):
        make_solver(settings, UI())
    monkeypatch.setenv("ACMEALI_TSIG_SECRET", "not base64 at all!")
    with pytest.raises(UsageError) as info:
        make_solver(settings, UI())
    assert "not base64" in info.value.message and "not base64 at all" not in info.value.message
    monkeypatch.setenv("ACMEALI_TSIG_SECRET", base64.b64encode(b"k" * 32).decode())
    make_solver(settings, UI())
    with pytest.raises(UsageError, match="needs server"):
        check_supported(CertSettings(challenge="dns-01", dns="rfc2136"), ["example.com"])


def test_whole_tsig_keygen_output_in_the_secret_file_is_accepted(tmp_path: Path) -> None:
    secret = base64.b64encode(b"s" * 32).decode()
    path = tmp_path / "key.conf"
    path.write_text(f'key "k" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n')
    p = Rfc2136({"server": "127.0.0.1", "tsig_key_name": "k", "tsig_secret_file": str(path)},
                ProviderEnv(settings=CertSettings(), ui=UI()))
    assert p._secret == secret


@pytest.mark.parametrize(("toml", "path", "words"), [
    ('[dns.rfc2136]\nsecret = "abc"\n', "dns.rfc2136.secret", "unknown key"),
    ('[dns.rfc2136]\ntsig_algorithm = "hmac-sha3"\n', "dns.rfc2136.tsig_algorithm",
     "expected one of hmac-sha256"),
    ('[dns.rfc2136]\nserver = "ns1.example.com:99999"\n', "dns.rfc2136.server", "host:port"),
    ('[dns.nosuch]\nx = 1\n', "dns.nosuch", "unknown DNS provider"),
    ('[[certificates]]\ndomains = ["a.example"]\nchallenge = "dns-01"\ndns = "rfc2136"\n',
     "certificates[0].rfc2136.server", "needs server"),
    ('[[certificates]]\ndomains = ["a.example"]\nrfc2136 = { tsig_secret = "x" }\n',
     "certificates[0].rfc2136.tsig_secret", "unknown key"),
])
def test_config_errors_name_the_key(toml: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(toml)
    assert info.value.key_path == path and words in info.value.render()


def test_config_table_reaches_the_certificate() -> None:
    c = load('[dns.rfc2136]\nserver = "ns1.example.com"\ntsig_key_name = "k"\n'
             '[[certificates]]\ndomains = ["a.example"]\nchallenge = "dns-01"\n'
             'dns = "rfc2136"\nrfc2136 = { server = "ns2.example.com:5353" }\n')
    assert c.defaults.dns_options == {"rfc2136": {"server": "ns1.example.com",
                                                  "tsig_key_name": "k"}}
    assert c.certificates[0].settings.dns_options == {
        "rfc2136": {"server": "ns2.example.com:5353", "tsig_key_name": "k"}}


def test_missing_secret_is_refused_before_any_order(tmp_path: Path, bind: Bind,
                                                    bind_pebble: Pebble) -> None:
    env = _config(tmp_path, bind_pebble,
                  f'[dns.rfc2136]\nserver = "{bind.address}"\ntsig_key_name = "k"\n')
    orders = sum(1 for _, path in bind_pebble.requests_seen() if path.startswith("/order-plz"))
    r = run_acmeali("issue", "-d", f"nosecret.{ZONE}", "--dns", "rfc2136", env=env)
    assert r.returncode == 2, r.stderr
    assert "needs the TSIG secret" in r.stderr and "ACMEALI_TSIG_SECRET" in r.stderr
    assert "Traceback" not in r.stderr
    assert sum(1 for _, path in bind_pebble.requests_seen()
               if path.startswith("/order-plz")) == orders


def test_renew_without_the_secret_stops_before_ordering(tmp_path: Path, bind: Bind,
                                                        bind_pebble: Pebble) -> None:
    name = f"renew.{ZONE}"
    env = _config(tmp_path, bind_pebble,
                  f'[defaults]\ndns_resolvers = ["{bind.address}"]\ndns_timeout = 60\n'
                  f'[dns.rfc2136]\nserver = "{bind.address}"\n'
                  f'tsig_key_name = "{bind.key_name}"\n')
    r = run_acmeali("issue", "-d", name, "--dns", "rfc2136",
                    env={**env, "ACMEALI_TSIG_SECRET": bind.secret})
    assert r.returncode == 0, r.stderr
    orders = sum(1 for _, path in bind_pebble.requests_seen() if path.startswith("/order-plz"))
    r = run_acmeali("renew", "--force", env=env)  # cron without the secret in its env
    assert r.returncode != 0
    assert "needs the TSIG secret" in r.stderr and "Traceback" not in r.stderr
    assert sum(1 for _, path in bind_pebble.requests_seen()
               if path.startswith("/order-plz")) == orders
