"""``mqtt-server:<instance-id>``: the TLS server certificate of an ApsaraMQ for MQTT instance.

The instance serves a certificate hosted in CAS, so deploying means: the chain and the
PKCS#8 key go to CAS (through the ``cas`` deployer, same reuse rules), then the instance is
switched to the new CAS identifier ``<CertId>-<region>``. The switch is left to a human on
purpose: per Alibaba's documentation it restarts the instance's brokers, which takes 5–10
minutes and drops every connected client. acmeali prints the identifier and the console
step instead of making an unannounced outage from a cron job.

Because acmeali cannot see when the switch happened, the previous CertId stays recorded as
in use (``previous_cert_id``) so CAS clean-up never deletes what the instance may still serve.
"""

from __future__ import annotations

from dataclasses import dataclass

from acmeali.deployers.base import DeployContext, Target, TargetResult
from acmeali.deployers.cas import CAS, ensure_uploaded, find_uploaded


@dataclass(frozen=True)
class MqttServer(Target):
    """``mqtt-server:<instance-id>``."""

    kind = "mqtt-server"
    usage = ("mqtt-server:<instance-id>",)
    summary = "CAS upload + the console step for ApsaraMQ for MQTT"
    services = (CAS,)

    spec: str
    instance_id: str

    @classmethod
    def parse(cls, spec: str, arg: str) -> MqttServer:
        if not arg:
            raise cls.fail(spec, "'mqtt-server' needs an instance id")
        return cls(spec, arg)

    def deploy(self, ctx: DeployContext) -> TargetResult:
        return _deploy(ctx, self)

    def check(self, ctx: DeployContext) -> bool:
        return find_uploaded(ctx) is not None  # the switch itself is the console's


def _deploy(ctx: DeployContext, target: MqttServer) -> TargetResult:
    instance = target.instance_id
    # Alibaba's MQTT server-certificate guide converts the key to PKCS#8 before hosting it.
    cas = ensure_uploaded(ctx, ctx.cert.key_pkcs8_pem)
    previous = ctx.meta.deployments.get(target.spec)
    prev_details = previous.details if previous else {}
    prev_id = prev_details.get("cert_id")
    if prev_id == cas.cert_id:  # already told; keep what was kept then
        prev_id = prev_details.get("previous_cert_id")
    if ctx.dry_run:
        return TargetResult(f"would upload to CAS and ask for {instance} to be switched")
    ctx.ui.result(
        f"MQTT instance {instance}: the server certificate is in CAS as {cas.identifier} "
        f"(CertId {cas.cert_id}, name {cas.name}).\n"
        f"  To use it: ApsaraMQ for MQTT console -> Instances -> {instance} -> "
        "Certificate Management -> Server Certificate -> Mutual authentication -> select "
        f"{cas.identifier} -> Start.")
    ctx.ui.warn(f"switching {instance} to the new certificate restarts the instance: "
                "clients are disconnected for 5-10 minutes; do it in a maintenance window")
    details = {"cert_id": cas.cert_id, "identifier": cas.identifier, "instance": instance,
               "previous_cert_id": prev_id, "switch": "manual"}
    in_use = frozenset({cas.cert_id} | ({int(prev_id)} if prev_id else set()))
    return TargetResult(f"in CAS as {cas.identifier}; switch instance {instance} to it in the "
                        "console (restarts it for 5-10 minutes)", details, in_use)
