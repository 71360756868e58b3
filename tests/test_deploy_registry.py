"""The target registry: grammar, help, docs, services, and the stdlib-only promise."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acmeali.aliyun.services import known_services
from acmeali.config import AliyunSettings, Config, load_config_bytes
from acmeali.deployers.registry import (
    TARGETS,
    epilog,
    help_text,
    parse_target,
    render_docs,
    target_classes,
    target_modules,
)
from acmeali.errors import ConfigError
from acmeali.lineage import LineageMeta

REPO = Path(__file__).resolve().parent.parent


def load_config_text(text: str) -> Config:
    return load_config_bytes(text.encode(), "test.toml")


@pytest.mark.parametrize(("spec", "fields"), [
    ("clb:lb-bp1abc:443", {"lb_id": "lb-bp1abc", "port": 443, "domain": None,
                           "region": None}),
    ("clb:cn-shanghai:lb-uf6abc:8443", {"lb_id": "lb-uf6abc", "port": 8443,
                                        "region": "cn-shanghai"}),
    ("clb:lb-bp1abc:443:WWW.Example.com.", {"domain": "www.example.com", "region": None}),
    ("slb:ap-southeast-1:lb-t4n:443:a.example.com", {"lb_id": "lb-t4n", "port": 443,
                                                    "domain": "a.example.com",
                                                    "region": "ap-southeast-1"}),
    ("alb:lsn-abc", {"listener_id": "lsn-abc", "extra": False, "region": None}),
    ("alb:cn-beijing:lsn-abc:extra", {"listener_id": "lsn-abc", "extra": True,
                                      "region": "cn-beijing"}),
    ("nlb:lsn-xyz:extra", {"listener_id": "lsn-xyz", "extra": True, "region": None}),
    ("nlb:eu-central-1:lsn-xyz", {"listener_id": "lsn-xyz", "region": "eu-central-1"}),
    ("cas-deploy:101,102, 101", {"resource_ids": (101, 102), "follow": False}),
    ("cas-deploy:follow", {"follow": True, "resource_ids": ()}),
    ("apigateway:cn-shanghai:grp1:api.example.com", {"region": "cn-shanghai",
                                                      "group_id": "grp1"}),
    ("cdn:auto", {"domain": "auto"}),
])
def test_grammar(spec: str, fields: dict[str, object]) -> None:
    target = parse_target(spec)
    assert target.spec == spec  # the user's string stays the key in metadata
    for name, value in fields.items():
        assert getattr(target, name) == value, name


@pytest.mark.parametrize(("spec", "why"), [
    ("clb:lb-bp1abc", "clb:[<region>:]<lb-id>:<port>"),
    ("clb:lb-bp1abc:https", "not a listener port"),
    ("clb:cn-hangzhou:lb:1:d:e", "clb:[<region>:]<lb-id>:<port>"),
    ("alb:", "alb:[<region>:]<listener-id>"),
    ("nlb:cn-hangzhou:a:b", "nlb:[<region>:]<listener-id>"),
    ("cas-deploy:", "cas-deploy:follow"),
    ("cas-deploy:abc", "resource ids"),
    ("elb:x", "unknown kind 'elb'"),
])
def test_bad_grammar_is_one_clear_line(spec: str, why: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_target(spec)
    assert why in str(err.value) and spec in str(err.value) and "\n" not in str(err.value)


def test_help_and_config_come_from_the_registry() -> None:
    forms = [f for cls in target_classes() for f in cls.usage]
    assert all(f in help_text() and f in epilog() for f in forms)
    out = subprocess.run([sys.executable, "-m", "acmeali", "deploy", "--help"],
                         capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200"))
    assert all(f in out.stdout for f in forms), out.stdout
    cfg = load_config_text('[defaults]\ndeploy = ["slb:cn-shanghai:lb-1:443", "alb:lsn-1:extra"]'
                           '\n[aliyun.endpoints]\nnlb = "127.0.0.1:9"\n')
    assert cfg.defaults.deploy == ("slb:cn-shanghai:lb-1:443", "alb:lsn-1:extra")
    with pytest.raises(ConfigError, match=r"defaults\.deploy"):
        load_config_text('[defaults]\ndeploy = ["alb:"]\n')
    with pytest.raises(ConfigError, match=r"unknown endpoint.*nlb"):
        load_config_text('[aliyun.endpoints]\nelb = "127.0.0.1:9"\n')


def test_docs_tables_are_generated_from_the_registry() -> None:
    doc = (REPO / "docs" / "alibaba-cloud.md").read_text()
    assert render_docs(doc) == doc, ("docs/alibaba-cloud.md is stale: run "
                                     "python -m acmeali.deployers.registry docs/alibaba-cloud.md")


def _policy_actions(doc: str) -> set[str]:
    """Every ``Action`` of the JSON policies in a document."""
    found: set[str] = set()
    for block in re.findall(r"```json\n(.*?)```", doc, re.S):
        for stmt in json.loads(block).get("Statement", []):
            action = stmt["Action"]
            found.update([action] if isinstance(action, str) else action)
    return found


def test_declared_ram_actions_are_in_the_docs_policies() -> None:
    """Each target's declared RAM actions (the table's column) are granted by some
    least-privilege policy in docs/alibaba-cloud.md, so the two never disagree."""
    granted = _policy_actions((REPO / "docs" / "alibaba-cloud.md").read_text())
    assert "yundun-cert:UploadUserCertificate" in granted and len(granted) > 40
    for cls in target_classes():
        assert all(a.count(":") == 1 for a in cls.ram_actions), cls.kind
        missing = [a for a in cls.ram_policy() if a not in granted]
        assert not missing, f"{cls.kind}: {missing} in no policy of docs/alibaba-cloud.md"


def test_ram_action_names_follow_the_products_rules() -> None:
    """A renamed action maps the way the hints and the declarations map it."""
    from acmeali.aliyun.errors import hint_for

    mqtt = known_services()["mqtt"]
    assert mqtt.ram_action("RegisterCaCertificate") == "mq:RegisterCa"
    assert mqtt.ram_action("GetRegisterCode") == "mq:GetRegisterCode"
    assert "mq:RegisterCa;" in (hint_for("Forbidden.RAM", mqtt, "RegisterCaCertificate") or "")


def test_each_target_names_its_services() -> None:
    services = known_services()
    for cls in target_classes():
        for svc in cls.services:
            assert services[svc.name] is svc
    settings = AliyunSettings(region="cn-shanghai")
    assert services["slb"].endpoint_for(settings) == "slb.aliyuncs.com"
    assert services["slb"].endpoint_for(settings, "eu-central-1") == "slb.eu-central-1.aliyuncs.com"
    assert services["alb"].endpoint_for(settings) == "alb.cn-shanghai.aliyuncs.com"
    assert services["nlb"].ram_action("UpdateListenerAttribute") == "nlb:UpdateListenerAttribute"
    intl = AliyunSettings(site="international")
    assert services["cas"].endpoint_for(intl) == "cas.ap-southeast-1.aliyuncs.com"


def test_every_registered_module_is_stdlib_only_at_import() -> None:
    mods = ", ".join(repr(m) for m in target_modules())
    code = ("import importlib, sys\n"
            f"for m in [{mods}]: importlib.import_module(m)\n"
            "import acmeali.aliyun.services as s; s.known_services()\n"
            "bad = [m for m in sys.modules if m.startswith(('alibabacloud', 'Tea', "
            "'darabonba', 'dns', 'cryptography'))]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(TARGETS) >= 11


def test_schema_1_details_are_lifted_into_cas_ids_once() -> None:
    raw = {"name": "x", "domains": ["x.test"], "server": "s", "schema": 1, "deployments": {
        "cas": {"ok": True, "details": {"cert_id": 11, "identifier": "11-cn-hangzhou"}},
        "cdn:auto": {"ok": True, "details": {"domains": {"a.x.test": 12, "b.x.test": "13"}}},
        "mqtt-server:i": {"ok": True, "details": {"cert_id": 14, "previous_cert_id": 11}},
        "hook:true": {"ok": True, "details": {}}}}
    meta = LineageMeta.from_json(raw)
    assert {k: d.cas_ids for k, d in meta.deployments.items()} == {
        "cas": [11], "cdn:auto": [12, 13], "mqtt-server:i": [11, 14], "hook:true": []}
    assert meta.schema == 2
    again = LineageMeta.from_json(meta.to_json())  # lifted once: typed from now on
    again.deployments["cas"].details["cert_id"] = 99
    assert LineageMeta.from_json(again.to_json()).deployments["cas"].cas_ids == [11]


def test_preflight_checks_credentials_for_every_cloud_target() -> None:
    """The credentials preflight asks the registry which targets call Alibaba Cloud (a kind
    list of its own missed the load balancers and CAS jobs)."""
    from acmeali.preflight import alibaba_targets

    specs = ["clb:lb-1:443", "slb:lb-1:443:a.test", "alb:lsn-1", "nlb:lsn-2:extra",
             "cas-deploy:follow", "cas", "cdn:auto", "hook:true", "mqtt-server:i"]
    assert alibaba_targets(specs) == [s for s in specs if not s.startswith("hook:")]
