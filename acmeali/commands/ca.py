"""``acmeali ca``: a local CA for ApsaraMQ for MQTT, one command per OpenSSL walk-through.

Every command validates everything (CA directory, names, codes, existing output) before it
generates a key or writes a file, so a mistake costs nothing. cryptography is imported in
the handlers only: ``acmeali --help`` must not pay for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from acmeali.cli import CommandParsers
from acmeali.context import Context

if TYPE_CHECKING:
    from acmeali.localca import Issued, LocalCA

# Kept in step with acmeali.localca.CA_KEY_TYPES (a test checks); importing that here
# would load cryptography for every `acmeali` invocation.
KEY_TYPES = ("rsa2048", "rsa4096", "ec256", "ec384")


def _common(p: argparse.ArgumentParser, *, ca: bool = True) -> None:
    if ca:
        p.add_argument("--ca", required=True, metavar="DIR",
                       help="CA directory (CA.key, CA.crt) made by `acmeali ca init`")
        p.add_argument("--ca-passphrase-file", metavar="FILE",
                       help="file holding the passphrase of an encrypted CA.key")
    p.add_argument("--force", action="store_true", help="replace existing output files")


def register(cp: CommandParsers) -> None:
    top = cp.add("ca", help="local CA for MQTT device authentication (replaces the OpenSSL steps)",
                 leaf=False,
                 description="A local certificate authority for ApsaraMQ for MQTT: the CA, the "
                             "broker's server certificate, the verification certificate that "
                             "registers the CA, and device certificates.")
    sub = CommandParsers.group(top, "ca_command")

    p = sub.add("init", help="create a CA: CA.key (0600) and CA.crt")
    p.add_argument("--dir", required=True, metavar="DIR", help="directory for the CA files")
    p.add_argument("--key-type", choices=KEY_TYPES, default="rsa2048",
                   help="CA key type (default rsa2048, like the OpenSSL walk-through)")
    p.add_argument("--subject", metavar="DN",
                   help='e.g. "C=CN,ST=ZJ,L=HZ,O=Example,OU=MQTT,CN=Example MQTT CA" '
                        "(default: O=acmeali local CA, CN=acmeali MQTT CA <random>)")
    p.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    p.add_argument("--passphrase-file", metavar="FILE",
                   help="encrypt CA.key with the passphrase in FILE")
    _common(p, ca=False)
    p.set_defaults(handler=run_init)

    p = sub.add("server-cert", help="server certificate, PKCS#8 key and chain for the broker/CAS")
    p.add_argument("-d", "--domain", action="append", dest="domains", required=True,
                   metavar="NAME", help="a name for the SAN (repeatable; *.wildcards and IPs "
                                        "allowed)")
    p.add_argument("--key-type", choices=KEY_TYPES, default="rsa2048",
                   help="server key type (default rsa2048)")
    p.add_argument("--days", type=int, default=500, help="validity in days (default 500)")
    p.add_argument("--subject", metavar="DN", help="subject (default: CN=<first name>)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    _common(p)
    p.set_defaults(handler=run_server_cert)

    p = sub.add("verification-cert",
                help="verificationCert.key/.crt whose CN is the instance's registration code")
    p.add_argument("--code", required=True, metavar="REGISTRATION_CODE",
                   help="code from the console (or GetRegisterCode)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the CA directory)")
    _common(p)
    p.set_defaults(handler=run_verification_cert)

    p = sub.add("device-cert", help="device (client) certificate: clientAuth, CN = device id")
    p.add_argument("--device-id", required=True, metavar="ID", help="becomes the CN")
    p.add_argument("--key-type", choices=KEY_TYPES, default="rsa2048",
                   help="device key type (default rsa2048; MCU TLS stacks handle it best)")
    p.add_argument("--days", type=int, default=1825, help="validity in days (default 1825)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    _common(p)
    p.set_defaults(handler=run_device_cert)

    # The same command as `acmeali key pkcs8`, offered where the seed documents need it.
    from acmeali.commands.keys import run_pkcs8

    p = sub.add("pkcs8", help="convert a private key to unencrypted PKCS#8 (as CAS requires)")
    p.add_argument("infile", metavar="IN", help="PEM private key (PKCS#1, SEC1 or PKCS#8)")
    p.add_argument("--out", required=True, metavar="OUT", help="output file (written 0600)")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted IN")
    _common(p, ca=False)
    p.set_defaults(handler=run_pkcs8)


def _load_ca(ctx: Context) -> LocalCA:
    from acmeali.localca import LocalCA

    return LocalCA.load(Path(ctx.arg("ca")), passphrase_file=ctx.arg("ca_passphrase_file"))


def _report(ctx: Context, what: str, paths: list[Path], issued: Issued | None = None) -> None:
    lines = [f"{what}:"] + [f"  {p}" for p in paths]
    if issued is not None:
        cert = issued.cert
        lines.append(f"  serial {cert.serial_number:x}, valid until "
                     f"{cert.not_valid_after_utc:%Y-%m-%d}")
        lines += [f"  note: {n}" for n in issued.notes]
    ctx.ui.result("\n".join(lines))


def run_init(ctx: Context) -> int:
    from acmeali.keys import read_passphrase_file
    from acmeali.localca import LocalCA, write_outputs

    directory = Path(ctx.arg("dir"))
    pf = ctx.arg("passphrase_file")
    passphrase = read_passphrase_file(pf) if pf else None
    ca, files = LocalCA.create(directory, key_type=ctx.arg("key_type"),
                               subject=ctx.arg("subject"), days=ctx.arg("days"),
                               force=bool(ctx.arg("force")), passphrase=passphrase)
    paths = write_outputs(directory, files, force=bool(ctx.arg("force")))
    _report(ctx, f"CA {ca.cert.subject.rfc4514_string()} written", paths)
    ctx.ui.result(f"  serial {ca.cert.serial_number:x}, valid until "
                  f"{ca.cert.not_valid_after_utc:%Y-%m-%d}; issued serials are kept in "
                  f"{directory / 'serials.txt'}")
    ctx.ui.info(f"next: `acmeali ca server-cert --ca {directory} -d NAME --out DIR` for the "
                "broker, "
                f"`acmeali mqtt register-ca --instance ID --ca {directory}` to register it "
                "(keep CA.key offline afterwards)")
    return 0


def run_server_cert(ctx: Context) -> int:
    from acmeali.localca import SERVER_FILES, check_outputs, write_outputs

    ca = _load_ca(ctx)
    out = Path(ctx.arg("out"))
    force = bool(ctx.arg("force"))
    check_outputs(out, SERVER_FILES, force=force)
    issued = ca.server_cert(ctx.arg("domains"), key_type=ctx.arg("key_type"),
                            days=ctx.arg("days"), subject=ctx.arg("subject"))
    paths = write_outputs(out, issued.files, force=force)
    _report(ctx, "server certificate written", paths, issued)
    ctx.ui.info(f"next: upload {out / 'server_chain.crt'} as the certificate and "
                f"{out / 'server_pkcs8.key'} as the key to CAS (leave its chain field "
                "empty); then switch the instance to it in the MQTT console (Instances -> your "
                "instance -> Certificate Management -> Server Certificate -> Mutual "
                "authentication -> select it -> Start; the instance restarts for 5-10 "
                "minutes)")
    return 0


def run_verification_cert(ctx: Context) -> int:
    from acmeali.localca import VERIFICATION_FILES, check_outputs, write_outputs
    from acmeali.localca.subject import check_registration_code

    code = check_registration_code(ctx.arg("code"))
    ca = _load_ca(ctx)
    out = Path(ctx.arg("out") or ctx.arg("ca"))
    force = bool(ctx.arg("force"))
    check_outputs(out, VERIFICATION_FILES, force=force)
    issued = ca.verification_cert(code)
    paths = write_outputs(out, issued.files, force=force)
    _report(ctx, "verification certificate written", paths, issued)
    ctx.ui.info(f"next: in the console's Register CA Certificate panel upload "
                f"{ca.directory / 'CA.crt'} and {out / 'verificationCert.crt'} "
                "(or let `acmeali mqtt register-ca` do all of it)")
    return 0


def run_device_cert(ctx: Context) -> int:
    from acmeali.localca import check_device_id, check_outputs, device_file_names, write_outputs

    device_id = check_device_id(ctx.arg("device_id"))
    ca = _load_ca(ctx)
    out = Path(ctx.arg("out"))
    force = bool(ctx.arg("force"))
    check_outputs(out, device_file_names(device_id), force=force)
    issued = ca.device_cert(device_id, key_type=ctx.arg("key_type"), days=ctx.arg("days"))
    paths = write_outputs(out, issued.files, force=force)
    _report(ctx, f"device certificate for {device_id} written", paths, issued)
    ctx.ui.info("next: install the key and certificate (or chain) on the device; it registers "
                "itself on its first TLS connection (see `acmeali mqtt device list`)")
    return 0
