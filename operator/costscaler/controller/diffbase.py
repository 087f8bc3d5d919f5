"""kopf's diff-base, kept small: a digest of the spec instead of a copy of it.

kopf stores the last handled configuration of every object in an annotation, a full copy of
the spec; annotations hold 256 KB in all, so a larger spec made every later patch of the
object fail, its finalizer included, and its namespace stayed Terminating (issue 18). The
only change handler here (`ensure`) reacts to "the spec changed" and reads the body, never
kopf's old/new/diff, so a digest of the spec tells kopf all it needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf


class SpecDigestStorage(kopf.AnnotationsDiffBaseStorage):
    """The annotation storage of kopf, holding `{"spec": {"sha256": ...}}` (about 90 bytes)."""

    def build(
        self,
        *,
        body: kopf.Body,
        extra_fields: Iterable[Any] | None = None,
    ) -> kopf.BodyEssence:
        """The essence kopf compares: the SHA-256 of the spec's canonical JSON."""
        spec = body.get("spec")
        if spec is None:
            return cast(kopf.BodyEssence, {})
        text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return cast(
            kopf.BodyEssence, {"spec": {"sha256": hashlib.sha256(text.encode()).hexdigest()}}
        )
