"""The apiserver rejects each manifest in invalid/ with a message naming the broken field.

Each file starts with `# field: <text>`: the error must contain that text. The bases in
invalid/base/ are accepted, so each rejection comes from the one rule its file breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent / "invalid"
CASES = sorted(HERE.glob("*.yaml"))
BASES = sorted((HERE / "base").glob("*.yaml"))


def _field(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# field: "), f"{path.name} must start with '# field: <name>'"
    return first.removeprefix("# field: ").strip()


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", BASES, ids=lambda p: p.stem)
def test_base_manifest_is_accepted(crds_installed, path: Path) -> None:
    crds_installed.kubectl("apply", "--dry-run=server", "-f", str(path))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_manifest_is_rejected_naming_the_field(crds_installed, path: Path) -> None:
    field = _field(path)
    done = crds_installed.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert done.returncode != 0, f"{path.name} was accepted:\n{done.stdout}"
    assert field in done.stderr, f"{path.name}: error does not name {field!r}:\n{done.stderr}"
    # Rejected by the server's schema/CEL/field validation, not by a client-side parse error.
    assert "Invalid" in done.stderr or "unknown field" in done.stderr or "Required" in done.stderr
