"""``acmeali revoke``: revoke by account key, or by the certificate's own key (RFC 8555 §7.6).

Signing with the certificate's key works without any account, which is what a key
compromise calls for. After ``keyCompromise`` the key is recorded as compromised and
never reused for the lineage; ``--reissue`` gets a replacement with a fresh key and
redeploys it in the same run.
"""

from __future__ import annotations

from acmeali.cli import CommandParsers
from acmeali.commands.issue import add_account_options
from acmeali.context import Context
from acmeali.errors import StoreError, UsageError

REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded",
           "cessationOfOperation")


def register(cp: CommandParsers) -> None:
    p = cp.add("revoke", help="revoke a certificate (by lineage or file)",
               description="Revoke a certificate. With --reason keyCompromise the key is "
                           "remembered as compromised and never reused; add --reissue to get "
                           "a replacement with a fresh key and redeploy it now.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", "--cert-name", metavar="LINEAGE",
                       help="revoke the lineage's live certificate")
    which.add_argument("--cert", metavar="FILE", help="revoke the certificate in this PEM file")
    p.add_argument("--reason", choices=REASONS, default="unspecified", help="RFC 5280 reason")
    p.add_argument("--key", metavar="FILE",
                   help="sign with this private key of the certificate (no account needed)")
    p.add_argument("--passphrase-file", metavar="F",
                   help="passphrase of an encrypted --key (first line of F)")
    p.add_argument("--use-cert-key", action="store_true",
                   help="sign with the lineage's own certificate key instead of the account key")
    p.add_argument("--reissue", action="store_true",
                   help="after revoking, issue a replacement (fresh key) and redeploy it")
    after = p.add_mutually_exclusive_group()
    after.add_argument("--delete", dest="delete", action="store_true", default=None,
                       help="delete the lineage after revoking (the default without "
                            "--reissue, as certbot)")
    after.add_argument("--no-delete", dest="delete", action="store_false",
                       help="keep the lineage, marked revoked: `renew` skips it until "
                            "`acmeali issue --name LINEAGE --force`")
    add_account_options(p)
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    from acmeali import certutil, keys
    from acmeali.commands.issue import make_environment

    a = ctx.args
    store = ctx.store
    if a.reissue and a.delete:
        raise UsageError("--reissue keeps the lineage; it cannot go with --delete")
    if a.use_cert_key and not a.name:
        raise UsageError("--use-cert-key needs --name (or give the key with --key FILE)")
    meta = None
    if a.name:
        if a.name not in store.lineage_names():
            raise UsageError(f"--name {a.name}: no such lineage in {ctx.state_dir}",
                             hint="`acmeali certs list` shows the lineages")
        meta = store.load_meta(a.name)
        bundle = store.read_live(a.name)
        cert_pem = bundle.cert
        server = meta.server
    else:
        from acmeali.validate import InvalidValue, read_input_file

        try:
            cert_pem = read_input_file(a.cert, f"--cert {a.cert}")
        except InvalidValue as exc:
            raise UsageError(str(exc)) from None
        server = ctx.server
    try:
        cert = certutil.load_chain(cert_pem)[0]
    except (ValueError, StoreError):
        raise UsageError(f"{a.cert or a.name}: not a PEM certificate") from None
    serial = certutil.serial_hex(cert)
    cert_spki = keys.public_key_sha256(cert.public_key())  # type: ignore[arg-type]
    if meta is None:  # a file that is some lineage's live certificate updates that lineage
        for name in store.lineage_names():
            try:
                m = store.load_meta(name)
            except StoreError:
                continue
            if m.current and m.current.serial == serial:
                meta, server = m, m.server
                break

    cert_key = None
    if a.key:
        cert_key = keys.load_private_key_file(a.key, a.passphrase_file)
    elif a.use_cert_key:
        assert meta is not None
        cert_key = keys.load_private_key(store.read_live(meta.name).privkey,
                                         source=f"{meta.name} key")
    if cert_key is not None and keys.public_key_sha256(cert_key) != cert_spki:
        raise UsageError("the key given does not belong to this certificate")
    if a.reissue and meta is None:  # before the CA is asked: nothing revoked in vain
        raise UsageError("--reissue needs a lineage (--name, or a --cert that is a lineage's "
                         "live certificate)")

    env = make_environment(ctx)
    from cryptography.hazmat.primitives.serialization import Encoding

    der = cert.public_bytes(Encoding.DER)
    if cert_key is not None:
        env.client(server).revoke(der, a.reason, cert_key=cert_key)
    else:
        from acmeali.accounts import load_account

        client = env.client(server)
        # A new account holds no authorizations, so the CA would refuse it anyway: never
        # register one just to be told so.
        if load_account(client, store, server) is None:
            raise UsageError(f"no ACME account for {server} in {ctx.state_dir} to revoke with",
                             hint="revoke with the certificate's own key: --key FILE (or "
                                  "--use-cert-key for a lineage)")
        client.revoke(der, a.reason)
    ctx.ui.result(f"Revoked certificate {serial} ({a.reason})")

    if meta is not None:
        with store.lock(meta.name, wait=30):
            meta = store.load_meta(meta.name)
            meta.revoked[serial] = a.reason
            if a.reason == "keyCompromise":
                if cert_spki not in meta.compromised_keys:
                    meta.compromised_keys.append(cert_spki)
                ctx.ui.info(f"{meta.name}: key marked compromised; it will never be reused")
            store.save_meta(meta)
            if not a.reissue and a.delete is not False:
                # certbot deletes a revoked lineage: otherwise the next `renew` would
                # quietly get a new certificate for names the user is giving up.
                from acmeali.lifecycle import delete_lineage

                delete_lineage(store, meta.name)
        if a.reissue:
            return _reissue(ctx, meta.name, env)
        if a.delete is False:
            ctx.ui.info(f"{meta.name}: kept, marked revoked; `acmeali renew` skips it. "
                        f"`acmeali issue --name {meta.name} --force` gets a replacement, "
                        f"`acmeali delete --name {meta.name}` removes it")
        else:
            ctx.ui.info(f"Deleted lineage {meta.name} (keep a revoked lineage with "
                          "--no-delete, or replace it with --reissue)")
    return 0


def _reissue(ctx: Context, name: str, env: object) -> int:
    from acmeali.issuance import IssueSpec, issue
    from acmeali.plan import lineage_plan

    meta = ctx.store.load_meta(name)
    plan = lineage_plan(meta, ctx.config)
    settings = plan.settings
    spec = IssueSpec(name=name, domains=plan.domains, settings=settings,
                     server=meta.server, csr_path=meta.settings.get("csr"),
                     force_new_key=True, reason="revoked", flag_keys=plan.flag_keys,
                     deploy_exact=plan.deploy_exact)
    from acmeali.commands.issue import pre_and_post_hooks

    with pre_and_post_hooks(settings, ctx.ui):
        result = issue(spec, env, lock_wait=30)  # type: ignore[arg-type]
    from acmeali.renewal import describe_expiry

    ctx.ui.result(f"{name}: replacement issued with a fresh key, "
                  f"{describe_expiry(result.meta)}")
    failed = [o for o in result.deploy_outcomes if not o.ok]
    for o in result.deploy_outcomes:
        (ctx.ui.result if o.ok else ctx.ui.error)(f"  {o.target}: {o.message}")
    # The deploy hook (e.g. reloading nginx) is part of redeploying, as after `issue`/`renew`.
    hook = settings.deploy_hook or ctx.config.renewal.deploy_hook
    if hook:
        from acmeali.renewal import run_deploy_hook

        run_deploy_hook(hook, result.meta, ctx.store, ctx.ui)
    return 1 if failed else 0
