"""acmeali: an ACME v2 client that deploys to Alibaba Cloud.

Kept import-light on purpose: ``acmeali --help`` and a ``renew`` with nothing due
must not pay for cryptography, requests or the Alibaba Cloud SDKs.
"""

__version__ = "0.1.0"
