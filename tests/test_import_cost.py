"""An engine without TLS never loads the TLS machinery (issue 17: idle engine memory).

cryptography alone is about 9 MiB resident per process; h11 and h2 another
1 MiB. Hosts run hundreds of engines, most without TLS interception.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # this checkout, not an installed trionet
HEAVY = ("cryptography", "h2", "h11", "hpack")


def _loaded_after(code: str) -> set[str]:
    probe = (
        f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_engine_and_cli_imports_leave_tls_machinery_unloaded() -> None:
    loaded = _loaded_after("import trionet, trionet.network, trionet.cli.run")
    assert "trio" in loaded  # the probe does see what was imported
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_lazy_public_names_resolve_and_load_on_use() -> None:
    loaded = _loaded_after(
        "import trionet\n"
        "from trionet import CaError, CertificateAuthority\n"
        "from trionet.tls.certs import CaError as C, CertificateAuthority as A\n"
        "assert CaError is C and CertificateAuthority is A\n"
        "assert trionet.CaError is C"
    )
    assert "cryptography" in loaded


def test_unknown_attribute_still_raises() -> None:
    import trionet

    try:
        trionet.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("trionet.NoSuchName resolved")
