"""``nlb:[<region>:]<listener-id>[:extra]``: an NLB TCPSSL listener's server certificate,
or an additional one.

Wire names from alibabacloud_nlb20220430: ``UpdateListenerAttribute`` takes
``CertificateIds`` (one server certificate); ``AssociateAdditionalCertificatesWithListener``
and ``DisassociateAdditionalCertificatesWithListener`` take ``AdditionalCertificateIds``;
``ListListenerCertificates`` filters with ``CertType=Server``; every action takes
``RegionId``. The behaviour is listener.py's.
"""

from __future__ import annotations

from acmeali.aliyun.services import Service
from acmeali.deployers.cas import CAS
from acmeali.deployers.listener import ListenerApi, ListenerTarget

NLB = Service("nlb", "alibabacloud_nlb20220430", "nlb.{region}.aliyuncs.com", "nlb")


class Nlb(ListenerTarget):
    kind = "nlb"
    usage = ("nlb:[<region>:]<listener-id>", "nlb:[<region>:]<listener-id>:extra")
    summary = "NLB TCPSSL listener's certificate, or an additional one (extra)"
    services = (CAS, NLB)
    ram_actions = NLB.ram_actions(
        "UpdateListenerAttribute", "ListListenerCertificates",
        "AssociateAdditionalCertificatesWithListener",
        "DisassociateAdditionalCertificatesWithListener")
    api = ListenerApi(
        NLB, "NLB",
        set_default=lambda ident: {"CertificateIds": [ident]},
        associate="AssociateAdditionalCertificatesWithListener",
        dissociate="DisassociateAdditionalCertificatesWithListener",
        additional=lambda ident: {"AdditionalCertificateIds": [ident]},
        list_filter={"CertType": "Server"}, region_param=True)
