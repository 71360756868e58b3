"""``acmeali delete --name LINEAGE``: end a lineage (certbot's ``delete --cert-name``).

Removes the renewal record (so `renew` and `certs` forget it), live/ and archive/
(unless --keep-files) and the lock file. Asks at a terminal; without one, --yes is
required, because a server may still read the files. Certificates uploaded to Alibaba
Cloud CAS stay unless --cleanup-cloud: then the uploads acmeali itself recorded for this
lineage are deleted, and nothing else.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import UsageError

if TYPE_CHECKING:
    from acmeali.lineage import LineageMeta


def register(cp: CommandParsers) -> None:
    p = cp.add("delete", help="delete a lineage (its files, renewal record and lock)",
               description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("--name", "--cert-name", metavar="LINEAGE", required=True,
                   help="the lineage to delete")
    p.add_argument("--yes", "-y", action="store_true",
                   help="do not ask (needed without a terminal)")
    p.add_argument("--keep-files", action="store_true",
                   help="leave live/ and archive/ PEM files in place; only forget the lineage")
    p.add_argument("--cleanup-cloud", action="store_true",
                   help="also delete the CAS certificates acmeali uploaded for this lineage")
    p.set_defaults(handler=run)


def confirm(ctx: Context, question: str) -> bool:
    """Ask at a terminal; refuse without one (``--yes`` is the unattended answer)."""
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: refusing without a terminal",
                         hint="add --yes to confirm")
    ctx.ui.done_progress()
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run(ctx: Context) -> int:
    from acmeali.config import check_lineage_name
    from acmeali.lifecycle import delete_lineage

    name = check_lineage_name(ctx.args.name)
    store = ctx.store
    if name not in store.lineage_names():
        raise UsageError(f"--name {name}: no such lineage in {ctx.state_dir}",
                         hint="`acmeali certs list` shows the lineages")
    what = "the renewal record" if ctx.args.keep_files else "its certificates, keys and record"
    if not ctx.args.yes and not confirm(ctx, f"Delete lineage {name} ({what})?"):
        ctx.ui.info("nothing deleted")
        return 1
    with store.lock(name, wait=30.0):
        meta = store.load_meta(name)
        if ctx.args.cleanup_cloud:
            failed = cleanup_cloud(ctx, meta)
            if failed:
                store.save_meta(meta)  # the uploads that are gone are no longer listed
                ctx.ui.error(f"{name}: {failed} CAS certificate(s) could not be deleted; the "
                             "lineage was kept so that `acmeali delete --cleanup-cloud` can "
                             "try again")
                return 1
        delete_lineage(store, name, keep_files=bool(ctx.args.keep_files))
    kept = " (PEM files kept)" if ctx.args.keep_files else ""
    ctx.ui.result(f"Deleted lineage {name}{kept}")
    left = [e for e in meta.cas_uploads if e.get("acmeali")]
    if left and not ctx.args.cleanup_cloud:
        ctx.ui.info(f"{len(left)} CAS certificate(s) it uploaded were left in place "
                    "(CertId " + ", ".join(str(e.get("cert_id")) for e in left) + ")")
    if meta.replaced_certs:  # no later deploy of this lineage will retry them now
        ctx.ui.warn(f"{len(meta.replaced_certs)} replaced certificate(s) acmeali made and "
                    "could not delete yet are left in place: " + ", ".join(
                        f"{e.get('kind')} {e.get('id')} ({e.get('region')})"
                        for e in meta.replaced_certs))
    return 0


def cleanup_cloud(ctx: Context, meta: LineageMeta) -> int:
    """Delete the CAS uploads acmeali recorded as its own; return how many failed."""
    from acmeali.aliyun.errors import AliyunError
    from acmeali.deployers.base import Api
    from acmeali.deployers.cas import CAS

    ours = [e for e in meta.cas_uploads if e.get("acmeali") and e.get("cert_id")]
    if not ours:
        return 0
    from acmeali.preflight import check_alibaba_credentials

    check_alibaba_credentials(ctx.config.aliyun, "--cleanup-cloud")
    api = Api(ctx.config.aliyun, ctx.ui)
    failed = 0
    for entry in ours:
        cert_id = int(entry["cert_id"])
        try:
            api(CAS, "DeleteUserCertificate", {"CertId": cert_id})
        except AliyunError as exc:
            code = (exc.code or "").lower().replace(".", "")
            if not ("notfound" in code or "notexist" in code or exc.status == 404):
                ctx.ui.error(f"CAS certificate {cert_id} ({entry.get('name')}): {exc.render()}")
                failed += 1
                continue
        meta.cas_uploads.remove(entry)
        ctx.ui.info(f"deleted the CAS certificate {cert_id} ({entry.get('name')})")
    return failed
