"""``acmeali deploy --name LINEAGE [--target TARGET ...] [--dry-run]``.

Pushes the live certificate of one lineage to its targets (default: the targets recorded
in the lineage), records every outcome, and exits 1 when any target failed, so the next
run (or `renew`) retries the lineage's own targets. A target named with --target is
deployed to once; --save also records it with the lineage, so renewals deploy there too.
--remove-target drops a recorded target: `renew` and `certs check` stop retrying and
flagging it (what it deployed stays where it is). --dry-run shows the calls it would make
and writes nothing, neither to Alibaba Cloud nor to the state directory.

`--cert FILE --key FILE --target ...` deploys a certificate that is not a lineage (a
server certificate from ``acmeali ca server-cert``, say); nothing is recorded for it.
"""

from __future__ import annotations

from typing import Any

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import AcmealiError, UsageError


def register(cp: CommandParsers) -> None:
    p = cp.add("deploy", help="deploy a stored certificate to Alibaba Cloud or a hook",
               description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    from acmeali.deployers.registry import epilog

    p.epilog = epilog()
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", "--cert-name", metavar="LINEAGE", help="the lineage to deploy")
    which.add_argument("--cert", metavar="FILE",
                       help="a certificate (leaf first, then its chain) that is not a lineage, "
                            "e.g. server_chain.crt from `acmeali ca server-cert`")
    p.add_argument("--key", metavar="FILE", help="the private key of --cert (any PEM form)")
    p.add_argument("--target", action="append", default=[], metavar="TARGET",
                   help="where to deploy (repeatable; default: the lineage's recorded targets)")
    p.add_argument("--save", action="store_true",
                   help="also record the --target(s) with the lineage, for renewals")
    p.add_argument("--remove-target", action="append", default=[], metavar="TARGET",
                   help="stop deploying the lineage to TARGET (repeatable); nothing is "
                        "deployed unless --target is given too")
    p.add_argument("--dry-run", action="store_true",
                   help="print the calls that would be made; change nothing")
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    from acmeali.commands.issue import make_environment, report_deploys
    from acmeali.config import check_lineage_name
    from acmeali.issuance import deploy_lineage
    from acmeali.targets import parse_target

    requested: list[str] = []
    for raw in ctx.args.target:
        try:
            requested.append(parse_target(raw).spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    dry_run = bool(ctx.args.dry_run)
    if ctx.args.cert:
        return _deploy_files(ctx, list(dict.fromkeys(requested)), dry_run)
    if ctx.args.key:
        raise UsageError("--key goes with --cert (a lineage deploys its own key)")
    if ctx.args.save and not requested:
        raise UsageError("--save records the --target(s) given; name at least one")
    name = check_lineage_name(ctx.args.name)
    store = ctx.store
    with store.lock(name, wait=30.0):
        from acmeali.reconcile import reconcile

        # Deployments are recorded by fingerprint: of the certificate that is live.
        meta = reconcile(store, store.load_meta(name), save=not dry_run, locked=True)
        if ctx.args.remove_target:
            from acmeali.lifecycle import remove_targets

            for line in remove_targets(meta, ctx.args.remove_target, ctx.config):
                ctx.ui.result(line)
            if not dry_run:
                store.save_meta(meta)
            if not requested:
                return 0
        targets = list(dict.fromkeys(requested)) or list(meta.deploy)
        if not targets:
            raise UsageError(f"lineage {name!r} has no deploy targets recorded",
                             hint="name one with --target, e.g. --target cas or "
                                  "--target cdn:static.example.com")
        if ctx.args.save and not dry_run:
            for spec in targets:
                if spec not in meta.deploy:
                    meta.deploy.append(spec)
        outcomes = deploy_lineage(meta, make_environment(ctx), targets, dry_run=dry_run)
    one_off = [t for t in targets if t not in meta.deploy]
    failed = report_deploys(ctx, outcomes, dry_run=dry_run, recorded=not one_off)
    if one_off and not dry_run:
        ctx.ui.info("deployed once to " + ", ".join(one_off) + "; add --save to deploy there "
                    "at every renewal too (and have failures retried)")
    return 1 if failed else 0


def _deploy_files(ctx: Context, targets: list[str], dry_run: bool) -> int:
    """Deploy a certificate and key given as files; nothing goes into the state directory."""
    from pathlib import Path

    from acmeali import certutil, keys
    from acmeali.commands.issue import make_environment, report_deploys
    from acmeali.deployers import deploy
    from acmeali.lineage import LineageMeta
    from acmeali.store.base import LiveBundle, LivePaths

    a = ctx.args
    if not targets:
        raise UsageError("--cert needs at least one --target (e.g. --target mqtt-server:ID)")
    if not a.key:
        raise UsageError("--cert needs --key FILE: Alibaba Cloud takes the key with the "
                         "certificate")
    from acmeali.validate import InvalidValue, read_input_file

    try:
        cert_pem = read_input_file(a.cert, f"--cert {a.cert}")
    except InvalidValue as exc:
        raise UsageError(str(exc)) from None
    try:
        chain = certutil.load_chain(cert_pem)
    except (ValueError, AcmealiError):
        chain = []
    if not chain:
        raise UsageError(f"--cert {a.cert}: not a PEM certificate")
    key = keys.load_private_key_file(a.key)
    if keys.public_key_sha256(key) != keys.public_key_sha256(
            chain[0].public_key()):  # type: ignore[arg-type]
        raise UsageError(f"--key {a.key} does not belong to the certificate in {a.cert}")
    pems = [c.public_bytes(_pem()) for c in chain]
    bundle = LiveBundle(privkey=keys.private_key_pem(key), cert=pems[0],
                        chain=b"".join(pems[1:]), fullchain=b"".join(pems), version=0)
    names = certutil.names_of(chain[0])
    meta = LineageMeta(name=Path(a.cert).stem, domains=list(names), server="")
    cert_path, key_path = Path(a.cert).resolve(), Path(a.key).resolve()
    paths = LivePaths(privkey=key_path, cert=cert_path, chain=cert_path, fullchain=cert_path)
    env = make_environment(ctx)
    outcomes = deploy(meta, bundle, targets, settings=env.aliyun, ui=ctx.ui,
                      live_paths=paths, dry_run=dry_run)
    return 1 if report_deploys(ctx, outcomes, dry_run=dry_run) else 0


def _pem() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM
