"""ESA (Edge Security Acceleration, API 2024-09-10): site certificates and SaaS custom
hostnames.

Sources: alibabacloud_esa20240910 3.16.0 models (_list_sites_*; _set_certificate_request.py:
SiteId and Type required, CasId and Region "required when Type is set to cas", Id "the
certificate ID to update", parameters in the form body; _list_certificates_*: SiteId
required, Result rows {Id, CasId, Type, Status, FingerprintSha256, Name, Region};
_update_custom_hostname_request.py: HostnameId required, CertType "required when SslFlag
is on", CasId/CasRegion with cas; _get_custom_hostname_response_body.py
CustomHostnameModel; _list_custom_hostnames_*: SiteId required) and the ESA docs
("Certificate quota": a plan holds a limited number of custom certificates per site).

State ``state.extra["esa"]``: "sites": SiteId -> {"SiteId", "SiteName", "Status"};
"certs": SiteId -> [row]; "hostnames": HostnameId -> the CustomHostnameModel;
"quota": custom certificates per site.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from .casref import by_id, st
from .products import CAS_USER_SOURCES, HOSTS, VERSIONS, Params, action, int_param, page
from .state import ApiError, Backend

ESA = "esa"
VERSIONS["2024-09-10"] = ESA  # alibabacloud_esa20240910 client: version='2024-09-10'
HOSTS[ESA] = "esa.cn-hangzhou.aliyuncs.com"

#: assumption: the entry plans allow 2 custom certificates per site (the docs give a
#: per-plan quota without numbers in the API reference); strict, so a target that adds a
#: certificate per renewal fails on the third.
DEFAULT_QUOTA = 2

_ids = itertools.count(7000001)


def _st(x: Any) -> dict[str, Any]:
    return st(x, ESA, sites=dict, certs=dict, hostnames=dict, quota=DEFAULT_QUOTA)


def add_site(emu: Any, name: str, *, foreign_cert: bool = True) -> int:
    """A site, holding (by default) a certificate someone uploaded in the console."""
    with emu.state.lock:
        s = _st(emu)
        for site in s["sites"].values():
            if site["SiteName"] == name:
                return int(site["SiteId"])
        site_id = next(_ids)
        s["sites"][site_id] = {"SiteId": site_id, "SiteName": name, "Status": "active",
                               "AccessType": "NS", "Coverage": "global"}
        s["certs"][site_id] = []
        if foreign_cert:
            s["certs"][site_id].append({"Id": "babaabcd1234", "Type": "upload",
                                        "CasId": None, "Name": "console-upload",
                                        "Status": "OK", "Region": None})
        return site_id


def add_hostname(emu: Any, site: str, hostname: str, *, ssl: bool = True) -> int:
    site_id = add_site(emu, site, foreign_cert=False)
    with emu.state.lock:
        hid = next(_ids)
        _st(emu)["hostnames"][hid] = {
            "HostnameId": hid, "Hostname": hostname, "SiteId": site_id, "SiteName": site,
            "RecordId": 880001, "RecordName": f"origin.{site}", "Status": "active",
            "SslFlag": "on" if ssl else "off", "CertType": "free" if ssl else None,
            "CasId": None, "VerifyCode": "verify-xyz", "VerifyHost": f"_esa.{hostname}"}
        return hid


def _site(b: Backend, p: Params) -> int:
    site_id = int(p.get("SiteId") or 0)
    if site_id not in _st(b)["sites"]:
        # ESA API reference, common errors: Site.NotFound. assumption: status.
        raise ApiError(404, "Site.NotFound", "The site does not exist.")
    return site_id


@action(ESA, "ListSites")
def list_sites(b: Backend, p: Params) -> dict[str, Any]:
    rows = list(_st(b)["sites"].values())
    name, how = p.get("SiteName"), p.get("SiteSearchType", "fuzzy")
    if name:  # model: SiteSearchType prefix|suffix|exact|fuzzy (default fuzzy)
        rows = [r for r in rows if (r["SiteName"] == name if how == "exact"
                                    else name in r["SiteName"])]
    size = int_param(p, "PageSize", 20, high=500)
    return {"Sites": page(rows, int_param(p, "PageNumber", 1), size), "TotalCount": len(rows),
            "PageNumber": int_param(p, "PageNumber", 1), "PageSize": size}


@action(ESA, "ListCertificates", "SiteId")
def list_certificates(b: Backend, p: Params) -> dict[str, Any]:
    rows = copy.deepcopy(_st(b)["certs"][_site(b, p)])
    size = int_param(p, "PageSize", 20, high=500)
    return {"Result": page(rows, int_param(p, "PageNumber", 1), size), "TotalCount": len(rows),
            "SiteId": int(p["SiteId"])}


@action(ESA, "SetCertificate", "SiteId", "Type")
def set_certificate(b: Backend, p: Params) -> dict[str, Any]:
    site_id = _site(b, p)
    if p["Type"] != "cas":
        # assumption: only the CAS form is modelled; upload would need Certificate+Key.
        raise ApiError(400, "InvalidParameter.Type", "Only Type=cas is modelled.")
    if not p.get("CasId") or not p.get("Region"):
        # model: CasId and Region "required when Type is set to cas".
        raise ApiError(400, "MissingCasId", "CasId and Region are required with Type=cas.")
    if p["Region"] != b.state.cas_region:
        # model Region: cn-hangzhou (China site) / ap-southeast-1 (international).
        raise ApiError(400, "InvalidParameter.Region", "The CAS region is wrong.")
    c = by_id(b, p["CasId"], "ESA")
    certs = _st(b)["certs"][site_id]
    row = {"Type": "cas", "CasId": str(c["Id"]), "Name": c["Name"], "Status": "OK",
           "Region": p["Region"], "FingerprintSha256": c["Sha2"].lower(),
           "CommonName": c["Common"], "SAN": c["Sans"]}
    if p.get("Id"):  # model Id: "the certificate ID to update"
        old = next((r for r in certs if r["Id"] == p["Id"]), None)
        if old is None:
            # assumption: code for updating a certificate the site does not hold.
            raise ApiError(404, "Certificate.NotFound", "The certificate does not exist.")
        old.update(row)
        return {"Id": old["Id"]}
    if len(certs) >= _st(b)["quota"]:
        # ESA docs: the plan's custom certificate quota; assumption: code.
        raise ApiError(400, "Certificate.QuotaExceeded",
                       "The number of custom certificates of the site reached the quota.")
    row["Id"] = f"{next(_ids):x}"
    certs.append(row)
    return {"Id": row["Id"]}


def _hostname(b: Backend, p: Params) -> dict[str, Any]:
    host = _st(b)["hostnames"].get(int(p.get("HostnameId") or 0))
    if host is None:
        # assumption: code.
        raise ApiError(404, "CustomHostname.NotFound", "The custom hostname does not exist.")
    return host


@action(ESA, "GetCustomHostname", "HostnameId")
def get_custom_hostname(b: Backend, p: Params) -> dict[str, Any]:
    return {"CustomHostnameModel": copy.deepcopy(_hostname(b, p))}


@action(ESA, "ListCustomHostnames", "SiteId")
def list_custom_hostnames(b: Backend, p: Params) -> dict[str, Any]:
    site_id = _site(b, p)
    rows = [copy.deepcopy(h) for h in _st(b)["hostnames"].values() if h["SiteId"] == site_id]
    size = int_param(p, "PageSize", 20, high=500)
    return {"Hostnames": page(rows, int_param(p, "PageNumber", 1), size),
            "TotalCount": len(rows)}


@action(ESA, "UpdateCustomHostname", "HostnameId")
def update_custom_hostname(b: Backend, p: Params) -> dict[str, Any]:
    host = _hostname(b, p)
    if p.get("RecordId") and int(p["RecordId"]) != host["RecordId"]:
        # model RecordId: the record the hostname is bound to. assumption: a different one
        # rebinds it; acmeali must send back the one it read.
        host["RecordId"] = int(p["RecordId"])
    if p.get("SslFlag") == "on":
        if p.get("CertType") != "cas" or not p.get("CasId") or not p.get("CasRegion"):
            # model: CertType required when SslFlag is on; CasId/CasRegion with cas.
            raise ApiError(400, "InvalidParameter.CertType",
                           "CertType=cas with CasId and CasRegion is required.")
        by_id(b, p["CasId"], "ESA")
        host.update(SslFlag="on", CertType="cas", CasId=int(p["CasId"]))
    elif p.get("SslFlag") == "off":
        host.update(SslFlag="off", CertType=None, CasId=None)
    return {}


def _cas_users(b: Backend, cert_id: int) -> list[dict[str, Any]]:
    """CAS ListCertificates UsingProductList: ESA sites and hostnames on the certificate."""
    out = [{"CloudProduct": "ESA", "Domain": _st(b)["sites"][s]["SiteName"]}
           for s, rows in _st(b)["certs"].items()
           if any(r.get("CasId") == str(cert_id) for r in rows)]
    out += [{"CloudProduct": "ESA", "Domain": h["Hostname"]}
            for h in _st(b)["hostnames"].values() if h.get("CasId") == cert_id]
    return out


CAS_USER_SOURCES.append(_cas_users)
