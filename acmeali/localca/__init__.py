"""Local CA toolkit for ApsaraMQ for MQTT device authentication (trustme-sized surface).

Replaces the OpenSSL walk-throughs: a CA (``LocalCA.create``), a server certificate with
its PKCS#8 key and chain, the verification certificate for CA registration and device
certificates. ``LocalCA.load`` refuses a CA directory that could not sign anything a
verifier accepts, so mistakes surface before a key is generated or a file written.

    ca, files = LocalCA.create(Path("ca"), key_type="ec256")
    write_outputs(Path("ca"), files, force=False)
    leaf = LocalCA.load(Path("ca")).server_cert(["*.mqtt.example.com"])
    write_outputs(Path("out"), leaf.files, force=False)
"""

from __future__ import annotations

from acmeali.localca.authority import (
    CA_CERT,
    CA_KEY,
    CA_KEY_TYPES,
    SERVER_FILES,
    VERIFICATION_FILES,
    Issued,
    LocalCA,
    check_days,
    device_file_names,
)
from acmeali.localca.output import (
    SERIALS_FILE,
    OutFile,
    SerialRegistry,
    check_outputs,
    write_outputs,
)
from acmeali.localca.subject import check_device_id, check_registration_code, parse_subject

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CA_KEY_TYPES",
    "SERIALS_FILE",
    "SERVER_FILES",
    "VERIFICATION_FILES",
    "Issued",
    "LocalCA",
    "OutFile",
    "SerialRegistry",
    "check_days",
    "check_device_id",
    "check_outputs",
    "check_registration_code",
    "device_file_names",
    "parse_subject",
    "write_outputs",
]
