"""Doc statements the UX review found false (ux-review.md (b)); each check failed on 879409e."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOCS = REPO / "docs"


def read(name: str) -> str:
    return (REPO / name).read_text()


def test_install_works_on_debian_12() -> None:  # (b)#1, #3
    for text in (read("README.md"), read("docs/index.md")):
        assert "pipx install ." in text
        assert "python3 -m venv /opt/acmeali" in text and "/usr/local/bin/acmeali" in text
        assert "externally-managed-environment" in text
    assert "pip install acmeali" not in read("docs/index.md")  # no release exists


def test_units_in_the_docs_run_this_installation() -> None:  # (b)#2, #18
    text = read("docs/renewal.md")
    assert "ExecStart=/usr/local/bin/acmeali" not in text
    assert "EnvironmentFile=-/etc/acmeali/aliyun.env" in text
    assert "acmeali schedule install" in text
    assert "ProtectSystem=full\n" not in text
    assert "default /etc/acmeali/config.toml for root" not in text


def test_certbot_paths_claim_is_qualified() -> None:  # (b)#4
    text = read("docs/index.md")
    assert "so existing nginx configurations keep working" not in text
    assert "import certbot" in text and (DOCS / "migrating.md").exists()


def test_endpoint_examples_are_not_presented_as_settings_to_copy() -> None:  # (b)#5, #6
    assert "The values above are the defaults" not in read("docs/alibaba-cloud.md")
    example = read("config.example.toml")
    assert re.search(r"(?m)^days_before_expiry", example) is None
    assert re.search(r"(?m)^\[aliyun\.endpoints\]", example) is None


def test_global_options_placement_is_stated_truly() -> None:  # (b)#13
    assert "accepted before or after the command" not in read("docs/index.md")
    assert "They may come before or after the command." not in read("docs/issuing.md")
    assert "certs --state-dir DIR list" in read("docs/issuing.md")


def test_renewal_page_statements() -> None:  # (b)#17, #19
    text = read("docs/renewal.md")
    assert "It is silent and offline when nothing is due" not in text
    assert "Each lineage counts once" in text


def test_failure_hook_is_once_per_run() -> None:  # (b)#20
    row = next(line for line in read("docs/configuration.md").splitlines()
               if line.startswith("| `failure_hook`"))
    assert "once per run" in row


def test_mqtt_console_path_is_one_path() -> None:  # (b)#22, #23, #27
    step = "Certificate Management -> Server Certificate -> Mutual authentication"
    assert step in read("acmeali/commands/ca.py").replace('"\n                "', "")
    assert step in read("acmeali/deployers/mqtt.py").replace('"\n        "', "")
    doc = read("docs/mqtt.md")
    assert "*Certificate\n   Management → Server Certificate* → *Mutual authentication*" in doc
    assert "see the configuration guide" not in doc
    assert "mq:MqttInstanceAccess" in doc and "API names, not RAM" in doc
    assert "mqtt ca list --instance ID [--sn SN]" in doc
    assert "[--device-sn SN]" in doc


def test_architecture_stays_inside_the_repository() -> None:  # (b)#24, #25
    text = read("docs/architecture.md")
    assert "../shared" not in text
    assert "`accounts.py`" in text
    assert "AcmealiError(message, *, hint=None)" in text
    assert "live_paths: LivePaths | None = None" in text


def test_revoke_account_flags_are_documented() -> None:  # (b)#26
    text = read("docs/revoking.md")
    for flag in ("--email", "--agree-tos", "--eab-kid", "--eab-hmac-key"):
        assert f"`{flag}" in text
