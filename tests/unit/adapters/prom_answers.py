"""Canned Prometheus answers per query text, including the source's merged queries.

`PrometheusSource` sends mergeable texts as `label_replace((text), "costscaler_part", "i", "",
"") or ...`: PromQL answers that with each part's series, tagged. The fakes answer it the same
way from their per-text answers, so the unit tests check the merge's split and attribution;
tests/integration runs the merged texts on the real Prometheus.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from costscaler.adapters.prometheus import PrometheusSource


def answer(answers: Mapping[str, list[dict]], fail: Collection[str], query: str) -> list[dict]:
    """The vector Prometheus would return for `query`; ConnectionError if it reads a `fail`."""
    if query in fail:
        raise ConnectionError("connection refused")
    if query in answers:
        return answers[query]
    found: list[dict] = []
    for text in [*answers, *fail]:
        head = f'label_replace(({text}), "{PrometheusSource.PART_LABEL}", "'
        at = query.find(head)
        if at < 0:
            continue
        if text in fail:
            raise ConnectionError("connection refused")
        start = at + len(head)
        tag = query[start : query.index('"', start)]
        found += [{**s, "metric": {**s.get("metric", {}), PrometheusSource.PART_LABEL: tag}}
                  for s in answers[text]]  # fmt: skip
    return found
