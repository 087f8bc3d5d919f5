"""User PromQL is confined to its deployment's namespace, or refused (issue 18, item 3).

The rewritten texts are also run on a real Prometheus in
tests/integration/test_promql_scope.py (they must parse and read nothing else).
"""

from __future__ import annotations

import pytest

from costscaler.adapters.promql import SeriesLabels, build_queries
from costscaler.adapters.promql_scope import UnscopedQueryError, scope_query
from costscaler.api.deployment import Metrics, MetricsPreset

NS = 'namespace="team"'


@pytest.mark.parametrize(
    ("query", "scoped"),
    [
        # The measured escalation: another namespace's series reached status.
        ('count(up{namespace="default"})', f'count(up{{namespace="default", {NS}}})'),
        ('count(up{namespace=~".+"})', f'count(up{{namespace=~".+", {NS}}})'),
        ("up", f"up{{{NS}}}"),
        ('{__name__="up"}', f'{{__name__="up", {NS}}}'),
        ('{__name__="up",}', f'{{__name__="up",{NS}}}'),
        ("sum(rate(x[1m]))", f"sum(rate(x{{{NS}}}[1m]))"),
        ("rate(x[5m:1m])", f"rate(x{{{NS}}}[5m:1m])"),
        ("x offset 1h30m", f"x{{{NS}}} offset 1h30m"),
        ("x @ start()", f"x{{{NS}}} @ start()"),
        ("a > bool b", f"a{{{NS}}} > bool b{{{NS}}}"),
        ("a * on(x) group_left(y) c", f"a{{{NS}}} * on(x) group_left(y) c{{{NS}}}"),
        ("a * on(x) group_left c", f"a{{{NS}}} * on(x) group_left c{{{NS}}}"),
        ("sum by (le) (rate(h[5m]))", f"sum by (le) (rate(h{{{NS}}}[5m]))"),
        ("SUM(x) WITHOUT (y)", f"SUM(x{{{NS}}}) WITHOUT (y)"),
        ("count(up) or vector(0)", f"count(up{{{NS}}}) or vector(0)"),
        ("job:rate5m:sum", f"job:rate5m:sum{{{NS}}}"),
        ("rate{a='}'}", f"rate{{a='}}', {NS}}}"),  # a metric named like a function
        (
            'label_replace(up, "ns", "$1", "x", "(.*)")',
            f'label_replace(up{{{NS}}}, "ns", "$1", "x", "(.*)")',
        ),
        ("up # {namespace='default'}\n", f"up{{{NS}}} \n\n"),  # a comment never hides a selector
        ("1.5e3 * Inf - NaN", "1.5e3 * Inf - NaN"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_every_selector_gets_the_namespace(query: str, scoped: str) -> None:
    assert scope_query(query, "namespace", "team") == scoped


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("count(sum)", "keyword 'sum'"),  # a keyword as a metric name: Prometheus may read it
        ('sum{namespace="default"}', "keyword 'sum'"),
        ("(offset)", "keyword 'offset'"),
        ("foo(up)", "unknown function 'foo'"),
        ("up[5m*2]", "unexpected '[5m*2]'"),  # duration arithmetic is not understood
        ("up{a=(b)}", "inside a selector's braces"),
        ("up}", "unbalanced '}'"),
        ("up{", "unclosed '{'"),
        ("5mins", "unexpected '5mins'"),
        ("sum by (up{a='b'}) (x)", "in a label list"),
        ("up\u00a0or x", "unexpected"),  # only PromQL's own whitespace
    ],
)
def test_what_cannot_be_scoped_is_refused(query: str, why: str) -> None:
    with pytest.raises(UnscopedQueryError, match=why.replace("[", r"\[").replace("*", r"\*")):
        scope_query(query, "namespace", "team")


def test_build_queries_scopes_user_queries_with_the_configured_label() -> None:
    m = Metrics(
        preset=MetricsPreset.GENERIC,
        request_rate='count(up{namespace="default"})',
        latency="lat",
        token_rate="sum(rate(tok[1m]))",
    )
    q = build_queries(m, SeriesLabels(namespace="kubernetes_namespace"), "1m", "team")
    assert q.request_rate == 'count(up{namespace="default", kubernetes_namespace="team"})'
    assert q.latency == 'lat{kubernetes_namespace="team"}'
    assert q.token_rate == 'sum(rate(tok{kubernetes_namespace="team"}[1m]))'


def test_build_queries_refuses_a_user_query_without_a_namespace() -> None:
    m = Metrics(preset=MetricsPreset.VLLM, latency="lat")
    with pytest.raises(UnscopedQueryError, match="namespace"):
        build_queries(m, SeriesLabels(), "1m")
    assert build_queries(Metrics(preset=MetricsPreset.VLLM), SeriesLabels(), "1m").request_rate
