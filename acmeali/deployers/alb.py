"""``alb:[<region>:]<listener-id>[:extra]``: an ALB HTTPS/QUIC listener's default
certificate, or an additional one.

Wire names from alibabacloud_alb20200616: ``UpdateListenerAttribute`` takes
``Certificates.1.CertificateId``; ``AssociateAdditionalCertificatesWithListener`` and
``DissociateAdditionalCertificatesFromListener`` take ``Certificates.N.CertificateId``;
``ListListenerCertificates`` filters with ``CertificateType=Server``. ALB is regional by
endpoint only (no RegionId parameter). The behaviour is listener.py's.
"""

from __future__ import annotations

from acmeali.aliyun.services import Service
from acmeali.deployers.cas import CAS
from acmeali.deployers.listener import ListenerApi, ListenerTarget

ALB = Service("alb", "alibabacloud_alb20200616", "alb.{region}.aliyuncs.com", "alb")


class Alb(ListenerTarget):
    kind = "alb"
    usage = ("alb:[<region>:]<listener-id>", "alb:[<region>:]<listener-id>:extra")
    summary = "ALB listener's default certificate, or an additional one (extra)"
    services = (CAS, ALB)
    ram_actions = ALB.ram_actions(
        "UpdateListenerAttribute", "ListListenerCertificates",
        "AssociateAdditionalCertificatesWithListener",
        "DissociateAdditionalCertificatesFromListener")
    api = ListenerApi(
        ALB, "ALB",
        set_default=lambda ident: {"Certificates": [{"CertificateId": ident}]},
        associate="AssociateAdditionalCertificatesWithListener",
        dissociate="DissociateAdditionalCertificatesFromListener",
        additional=lambda ident: {"Certificates": [{"CertificateId": ident}]},
        list_filter={"CertificateType": "Server"}, region_param=False)
