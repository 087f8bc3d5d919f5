"""Load costscaler manifests from YAML files or folders, with errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from costscaler.api.budget import CostBudget
from costscaler.api.common import GROUP
from costscaler.api.deployment import InferenceDeployment
from costscaler.api.pool import CapacityPool
from costscaler.errors import UserError

Resource = CapacityPool | InferenceDeployment | CostBudget
KINDS: dict[str, type[Resource]] = {
    "CapacityPool": CapacityPool,
    "InferenceDeployment": InferenceDeployment,
    "CostBudget": CostBudget,
}
T = TypeVar("T", CapacityPool, InferenceDeployment, CostBudget)
_HINTS = {
    "extra_forbidden": "unknown field: remove it or check its spelling",
    "missing": "required field is missing",
}


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One line per problem: `where: field.path: what is wrong and what is expected`."""
    lines = []
    for err in exc.errors(include_url=False):
        message = _HINTS.get(err["type"], err["msg"].removeprefix("Value error, "))
        lines.append(f"{where}: {_path(err['loc'])}: {message}")
    return "\n".join(lines)


def parse_resource(doc: dict[str, Any], where: str = "manifest") -> Resource:
    """Validate one costscaler document (a dict as in YAML) into its model."""
    kind = doc.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise UserError(f"{where}: kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc, dict) else "?"
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, f"{where} ({kind} {name})")) from None


def _is_ours(doc: dict[str, Any]) -> bool:
    api_version = str(doc.get("apiVersion", ""))
    return api_version.split("/")[0] == GROUP or doc.get("kind") in KINDS


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if path.is_file():
        return [path]
    raise UserError(f"{path}: no such file or folder")


def _documents(file: Path) -> list[tuple[int, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
        return list(enumerate(yaml.safe_load_all(text), start=1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{file}{at}: not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{file}: cannot read: {exc}") from None


def load_manifests(path: str | Path) -> list[Resource]:
    """Read every costscaler resource in a YAML file or a folder of them.

    Documents of other kinds (Deployments, Services...) are skipped, so a user can point at a
    folder holding a whole application. Any invalid costscaler document raises `UserError`
    naming the file, the document number, the field path and what is expected.
    """
    resources: list[Resource] = []
    for file in _files(Path(path)):
        for number, doc in _documents(file):
            if doc is None:
                continue
            where = f"{file}, document {number}"
            if not isinstance(doc, dict):
                raise UserError(f"{where}: expected a mapping (a Kubernetes object)")
            if _is_ours(doc):
                resources.append(parse_resource(doc, where))
    return resources


def load_kind(path: str | Path, kind: type[T]) -> list[T]:
    """The resources of one kind in a file or folder (see `load_manifests`)."""
    return [r for r in load_manifests(path) if isinstance(r, kind)]
