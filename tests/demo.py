"""``make demo``: the main job end to end on loopback, printed step by step.

Starts Pebble (the CA) with pebble-challtestsrv (its DNS), and the Alibaba Cloud emulator
forwarding Alidns TXT records to that DNS; then runs the real ``acmeali`` CLI:
issue an apex + wildcard certificate through Alidns DNS-01, deploy it to CAS, CDN and API
Gateway, force a renewal that moves every target to the new certificate, and show what
the emulated cloud holds. Everything stays on 127.0.0.1 and in ``.demo/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.emulator import AliyunEmulator
from tests.peers.pebble import Pebble, PebbleOptions

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".demo"
GROUP = "demogroup0001"


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def acmeali(*args: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "acmeali", *args]
    shown = " ".join(a if " " not in a and "*" not in a else repr(a) for a in args)
    print(f"$ acmeali {shown}", flush=True)
    t = time.monotonic()
    # One pipe for both streams, so lines appear in the order acmeali wrote them
    # ("Requesting ..." before "Certificate ... saved").
    proc = subprocess.run(cmd, env=env, cwd=WORK, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=300)
    for line in proc.stdout.rstrip().splitlines():
        print(f"  {line}")
    print(f"  (exit {proc.returncode}, {time.monotonic() - t:.2f}s)", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo step failed: acmeali {shown}")


def main() -> int:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir()
    step("Starting Pebble (ACME CA), pebble-challtestsrv (DNS) and the Alibaba Cloud emulator")
    with Pebble(WORK / "pebble", PebbleOptions()) as pebble, \
            AliyunEmulator(challtestsrv=pebble.challtestsrv) as emu:
        emu.add_dns_zone("example.test")
        emu.add_cdn_domain("static.example.test")
        emu.add_apigateway_domain(GROUP, "api.example.test")
        print(f"  ACME directory: {pebble.directory_url}")
        print(f"  Alibaba Cloud emulator: http://{emu.endpoint} (signatures verified)")
        config = WORK / "acmeali.toml"
        config.write_text(
            f'state_dir = "{WORK / "state"}"\n'
            "[acme]\n"
            f'server = "{pebble.directory_url}"\n'
            f'ca_bundle = "{pebble.ca_bundle}"\n'
            'email = ["ops@example.test"]\n'
            "agree_tos = true\n"
            "[defaults]\n"
            f'dns_resolvers = ["{pebble.challtestsrv.dns_address}"]\n'
            "dns_timeout = 60\n"
            + emu.config_toml()
            # Keep no previous upload, so the renewal below visibly deletes the old one
            # (the default keeps one previous upload for a quick manual rollback).
            + "\n[aliyun.cas]\nkeep_previous = 0\n")
        env = dict(os.environ)
        env.update(emu.env())
        env["ACMEALI_CONFIG"] = str(config)
        env["PYTHONPATH"] = str(REPO)

        step("Issue example.test + *.example.test via Alidns DNS-01; deploy to CAS, CDN, API GW")
        acmeali("issue", "-d", "example.test", "-d", "*.example.test", "--dns", "alidns",
                "--deploy", "cas", "--deploy", "cdn:static.example.test",
                "--deploy", f"apigateway:{GROUP}:api.example.test", env=env)
        acmeali("certs", "list", env=env)

        step("renew with nothing due (what cron sees on most runs)")
        acmeali("renew", env=env)

        step("Forced renewal: every target moves to the new certificate, the old upload goes")
        acmeali("renew", "--force", env=env)
        acmeali("certs", "check", env=env)

        step("What the emulated Alibaba Cloud holds now")
        deleted = [p.get("CertId") for p in emu.calls_of("DeleteUserCertificate")]
        print(f"  CAS uploads deleted after the renewal: {deleted or 'none'}")
        for cert_id, cert in sorted(emu.state.cas_certs.items()):
            print(f"  CAS certificate {cert_id}: {cert['Name']} serial {cert['SerialNo']}")
        for name, dom in emu.state.cdn_domains.items():
            print(f"  CDN {name}: CertId {dom.get('CertId')}, HTTPS {dom.get('SslProtocol')}")
        for (group, dom_name), dom in emu.state.apigw_domains.items():
            print(f"  API Gateway {group}/{dom_name}: certificate {dom.get('CertificateName')}")
        print(f"\nDone. State directory: {WORK / 'state'}; live files under "
              f"{WORK / 'state' / 'live' / 'example.test'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
