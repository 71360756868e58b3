"""acmeali: an ACME v2 client that deploys to Alibaba Cloud.

Kept import-light on purpose: ``acmeali --help`` and a ``renew`` with nothing due
must not pay for cryptography, requests or the Alibaba Cloud SDKs.
"""

__version__ = "0.1.0"

# The one place the project's address is written (pyproject.toml's [project.urls] repeats
# it): hints name pages here, since a pip-installed user has no docs/ directory.
PROJECT_URL = "https://github.com/acmeali/acmeali"


def docs_url(page: str) -> str:
    """The web address of ``docs/<page>`` (``page`` may carry a ``#fragment``)."""
    return f"{PROJECT_URL}/blob/main/docs/{page}"
