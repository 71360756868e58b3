"""What `pip install .` / `pipx install .` ship: license, metadata, one project address."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

from acmeali import PROJECT_URL
from tests.conftest import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def test_wheel_carries_license_classifiers_and_urls(tmp_path: Path) -> None:
    """Built as pip builds it (isolated, with the declared setuptools)."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600,
                       env={"PIP_DISABLE_PIP_VERSION_CHECK": "1",
                            **{k: v for k, v in __import__("os").environ.items()
                               if k != "PYTHONPATH"}})
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("acmeali-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.message_from_bytes(z.read(next(n for n in names
                                                     if n.endswith(".dist-info/METADATA"))))
        license_name = next(n for n in names if n.endswith("licenses/LICENSE"))
        license_text = z.read(license_name).decode()
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a stub
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.10" in classifiers
    assert f"Homepage, {PROJECT_URL}" in (meta.get_all("Project-URL") or [])


def test_build_requirement_understands_the_spdx_license() -> None:
    py = tomllib.loads((REPO / "pyproject.toml").read_text())
    requires = py["build-system"]["requires"]
    assert "setuptools>=77" in requires  # 68 fails: "project.license must be valid ..."
    assert py["project"]["urls"]["Homepage"] == PROJECT_URL
    assert (REPO / "LICENSE").read_text().count("Apache License") >= 1
