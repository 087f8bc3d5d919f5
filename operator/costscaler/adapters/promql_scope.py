"""Namespace scoping of user PromQL: every series selector gets the deployment's namespace.

Anyone who may create an InferenceDeployment in namespace N may write its `spec.metrics`
queries, and the operator runs them with its own Prometheus credentials and copies the result
into status. Without scoping, `count(up{namespace="kube-system"})` from N would read another
namespace's series. So the operator rewrites each user query: every vector selector, with or
without braces, gets the matcher `<namespace label>="N"` added. Matchers are ANDed, so a
selector that asks for another namespace (`namespace="default"`, `namespace=~".+"`,
`namespace!="N"`) selects nothing, and one without a namespace label selects nothing either.

Injection rather than refusal because it keeps ordinary queries working as written
(`sum(rate(my_requests_total[1m]))`). The rewriting is done on PromQL's tokens, and it fails
closed: a character, a function or a keyword in a place it does not understand refuses the
whole query (`UnscopedQueryError`) instead of passing it through. Refusals are rare in practice:
the unknown things are mostly experimental syntax (duration arithmetic, keywords used as metric
names); the message names the token.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Prometheus's functions (3.x); an identifier followed by "(" must be one of them.
FUNCTIONS = frozenset(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing exp first_over_time floor
    histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
    histogram_stdvar histogram_sum holt_winters hour idelta increase info irate label_join
    label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute
    month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn
    sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time
    stdvar_over_time sum_over_time tan tanh time timestamp ts_of_first_over_time
    ts_of_last_over_time ts_of_max_over_time ts_of_min_over_time vector year""".split()
)
# Keywords are case-insensitive in PromQL; each has one role here, checked where it appears.
AGGREGATORS = frozenset(
    "sum avg count min max group stddev stdvar topk bottomk count_values quantile limitk "
    "limit_ratio".split()
)
GROUPING = frozenset("by without on ignoring group_left group_right".split())
BINARY = frozenset("and or unless atan2 bool".split())
NUMBERS = frozenset(("inf", "nan"))
KEYWORDS = AGGREGATORS | GROUPING | BINARY | NUMBERS | {"offset", "start", "end"}

_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_NUMBER = r"(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
_TOKEN = re.compile(
    r"""(?P<space>[\ \t\r\n]+)|(?P<comment>\#[^\n]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
    |(?P<range>\[\s*(?:DUR|NUM)?\s*(?::\s*(?:DUR|NUM)?\s*)?\])
    |(?P<number>(?:DUR|NUM)(?![\w:.]))
    |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=(){},@])""".replace("DUR", _DURATION).replace(
        "NUM", _NUMBER
    ),
    re.VERBOSE,
)
_MATCHER_TOKENS = frozenset(("ident", "string", "=", "!=", "=~", "!~", ","))
_COMPARISONS = frozenset(("==", "!=", "<=", ">=", "<", ">"))
_OPERAND_END = frozenset(("ident", "string", "number", "range", ")", "}"))


class UnscopedQueryError(ValueError):
    """A user query the operator cannot confine to its namespace: it is not run at all.

    The handlers' parser turns it into an invalid spec (Ready=False, reason InvalidSpec).
    """


@dataclass(frozen=True)
class _Tok:
    kind: str  # space, string, range, number, ident, or the operator text itself
    text: str


def _tokens(query: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None:
            raise UnscopedQueryError(f"unexpected {query[pos : pos + 12]!r} at offset {pos}")
        kind = m.lastgroup or ""
        if kind == "comment":  # dropped: a comment could hide text from a reader, not from us
            out.append(_Tok("space", "\n"))
        else:
            out.append(_Tok(m.group() if kind == "op" else kind, m.group()))
        pos = m.end()
    return out


def scope_query(query: str, label: str, namespace: str) -> str:
    """`query` with `label="namespace"` added to every series selector; refuses what it can't.

    Raises `UnscopedQueryError` naming the first token it cannot place.
    """
    toks = _tokens(query)
    sig = [i for i, t in enumerate(toks) if t.kind != "space"]
    matcher = f"{label}={json.dumps(namespace)}"
    out: list[str] = []
    k = 0
    while k < len(sig):
        i = sig[k]
        tok, prev = toks[i], toks[sig[k - 1]] if k else None
        nxt = toks[sig[k + 1]] if k + 1 < len(sig) else None
        out.append("".join(t.text for t in toks[(sig[k - 1] + 1 if k else 0) : i]))
        if tok.kind == "{":
            k = _braces(toks, sig, k, matcher, out)
            continue
        if tok.kind in ("}", "]"):
            raise UnscopedQueryError(f"unbalanced {tok.text!r}")
        out.append(tok.text)
        if tok.kind == "ident":
            k = _ident(toks, sig, k, prev, nxt, matcher, out)
            continue
        k += 1
    tail = toks[sig[-1] + 1 :] if sig else toks
    return "".join(out) + "".join(t.text for t in tail)


def _ident(
    toks: list[_Tok], sig: list[int], k: int, prev: _Tok | None, nxt: _Tok | None,
    matcher: str, out: list[str],
) -> int:  # fmt: skip
    """Place one identifier: keyword, function, or a metric name that gets the matcher."""
    text, word = toks[sig[k]].text, toks[sig[k]].text.lower()
    after_operand = prev is not None and prev.kind in _OPERAND_END
    follows = nxt.kind if nxt else ""
    if word in NUMBERS:
        return k + 1
    if word in GROUPING:
        if follows == "(":
            return _label_list(toks, sig, k + 1, out)
        if word in ("group_left", "group_right"):
            return k + 1
    elif word in AGGREGATORS:
        if follows == "(" or (nxt is not None and nxt.text.lower() in ("by", "without")):
            return k + 1
    elif (word in BINARY or word == "offset") and after_operand:
        return k + 1
    elif word == "bool" and prev is not None and prev.kind in _COMPARISONS:
        return k + 1
    elif word in ("start", "end") and prev is not None and prev.kind == "@" and follows == "(":
        return k + 1
    if word in KEYWORDS:
        raise UnscopedQueryError(f"keyword {text!r} in a place it is not understood")
    if follows == "(":
        if text not in FUNCTIONS:
            raise UnscopedQueryError(f"unknown function {text!r}")
        return k + 1
    if follows != "{":  # a bare metric name: give it braces holding the matcher
        out.append("{" + matcher + "}")
    return k + 1


def _braces(toks: list[_Tok], sig: list[int], k: int, matcher: str, out: list[str]) -> int:
    """Copy a selector's `{...}` with the matcher added before the closing brace."""
    start = sig[k]
    for j in range(k + 1, len(sig)):
        tok = toks[sig[j]]
        if tok.kind == "}":
            inner = "".join(t.text for t in toks[start + 1 : sig[j]])
            sep = "" if not inner.strip() or inner.rstrip().endswith(",") else ", "
            out.append("{" + inner + sep + matcher + "}")
            return j + 1
        if tok.kind not in _MATCHER_TOKENS:
            raise UnscopedQueryError(f"unexpected {tok.text!r} inside a selector's braces")
    raise UnscopedQueryError("unclosed '{'")


def _label_list(toks: list[_Tok], sig: list[int], k: int, out: list[str]) -> int:
    """Copy a grouping's `(label, ...)`: label names, never selectors."""
    for j in range(k + 1, len(sig)):
        tok = toks[sig[j]]
        if tok.kind == ")":
            out.append("".join(t.text for t in toks[sig[k - 1] + 1 : sig[j] + 1]))
            return j + 1
        if tok.kind not in ("ident", "string", ","):
            raise UnscopedQueryError(f"unexpected {tok.text!r} in a label list")
    raise UnscopedQueryError("unclosed '(' of a label list")
