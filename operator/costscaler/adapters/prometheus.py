"""Load and latency of every InferenceDeployment from Prometheus: a few queries per tick.

`PrometheusSource.fetch` takes all deployments at once, runs each distinct query text once (off
the event loop: prometheus-api-client is synchronous), the small preset ones three to a query
(`MERGE_PARTS`), and returns one `Reading` per deployment.
A reading is either usable or says why not (`problem`): the query failed, there is no series,
more than one series where one was expected, a NaN or Inf value, or samples older than two
scrape intervals. Zero traffic is data (rate 0), no series is not: the controller never scales
down on a reading with a problem. The SLO window's request counts are optional: when their
query fails or its answer is unusable they are unknown (None), and the reading stands.

A hung Prometheus (accepting connections, never answering) must not hold the ticks: a fetch has
one deadline, shorter than the tick interval, after which its unanswered queries count as
failed, and a query still waiting from an earlier fetch is not sent again, so no queue of
queries builds up behind a hang.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from urllib3.util.retry import Retry

from costscaler.adapters.promql import (
    QuerySet,
    SeriesLabels,
    count_within,
    histogram_quantile,
    share_within,
)

Key = tuple[str, str]  # (namespace, InferenceDeployment name)
Series = list[dict[str, Any]]  # Prometheus instant vector: [{"metric": {...}, "value": [t, "v"]}]


class PromClient(Protocol):
    """The one call the adapter needs from a Prometheus client."""

    def custom_query(self, query: str) -> Series:
        """Run an instant query and return its vector."""
        ...


@dataclass(frozen=True)
class Target:
    """One deployment to read: its key, its queries and its SLO (quantile, threshold in s);
    `ttft` and `itl` the (quantile, threshold s) of those objectives when stated."""

    key: Key
    queries: QuerySet
    quantile: float
    threshold_seconds: float
    window_seconds: float = 3600.0  # forecast window: how far back a backfill reaches
    slo_window_seconds: float = 0.0  # the SLO window its `slo_counts` query covers
    ttft: tuple[float, float] | None = None
    itl: tuple[float, float] | None = None


@dataclass(frozen=True)
class Reading:
    """One deployment's load this tick. Rates in 1/s, latency in s; `problem` None when usable."""

    rate_by_pool: dict[str, float] = field(default_factory=dict)
    latency_seconds: float | None = None
    attainment: float | None = None
    token_rate: float | None = None
    problem: str | None = None
    message: str = ""
    slo_good: float | None = None  # requests within the threshold over the SLO window
    slo_total: float | None = None  # all requests over the SLO window
    # The TTFT and ITL objectives' quantiles (s) and shares within their thresholds; None when
    # not stated or no request was observed.
    ttft_seconds: float | None = None
    ttft_attainment: float | None = None
    itl_seconds: float | None = None
    itl_attainment: float | None = None
    # Fast signals per pool (absent: not exported): requests waiting, mean KV-cache use (0-1).
    queue_by_pool: dict[str, float] = field(default_factory=dict)
    kv_cache_by_pool: dict[str, float] = field(default_factory=dict)
    prompt_token_rate: float | None = None  # input tokens/s; `token_rate` is output tokens/s

    @property
    def request_rate(self) -> float | None:
        """Requests/s over all pools, or None when the reading is unusable."""
        return None if self.problem else sum(self.rate_by_pool.values())

    @property
    def queue_depth(self) -> float | None:
        """Requests waiting over all pools, or None when not exported."""
        return sum(self.queue_by_pool.values()) if self.queue_by_pool else None

    @property
    def kv_cache_usage(self) -> float | None:
        """The KV-cache use of the fullest pool (0-1), or None when not exported."""
        return max(self.kv_cache_by_pool.values()) if self.kv_cache_by_pool else None


@dataclass
class FetchReport:
    """What one fetch cost: the distinct queries run and the ones that failed."""

    queries: int = 0
    errors: int = 0
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unusable:
    """A sample's value that a tick must not act on: the reason and what was wrong with it."""

    reason: str
    detail: str


# A sample as kept: its pool and `le` labels (None when absent) and its value, or why it is
# unusable. Prometheus's answer for a thousand deployments' histograms is ~20,000 samples of
# nested dicts (~800 B each in Python, and the SLO window's counts are kept for minutes);
# these tuples are ~100 B, their label values interned.
Sample = tuple[str | None, str | None, float | Unusable]


@dataclass
class Grouped:
    """A vector's samples by (namespace, deployment), built once per fetch: each deployment's
    lookup is then O(its series), not O(all series) (a thousand deployments, 20k series)."""

    by_key: dict[Key, list[Sample]] = field(default_factory=dict)
    anonymous: list[Sample] = field(default_factory=list)  # series without those labels


class BadDataError(Exception):
    """A result that must not be acted on; `reason` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def connect(url: str, token: str | None, ca_file: str | None, timeout: float) -> PromClient:
    """A prometheus-api-client connection with a bearer token and a CA bundle, if given.

    It answers instant queries (`PromClient`) and range queries (`backfill.RangeClient`).

    `timeout` (s) bounds each socket read. One quick retry of a refused connection or a 502-504
    only, and none of a read that timed out: a hung Prometheus would cost a second timeout, and
    the tick should hold replicas promptly, not spend its interval waiting.
    """
    from prometheus_api_client import PrometheusConnect

    session = requests.Session()
    session.verify = ca_file or True
    headers = {"Authorization": f"Bearer {token}"} if token else None
    retry = Retry(total=1, read=0, backoff_factor=0.2, status_forcelist=(502, 503, 504))
    conn = PrometheusConnect(url, headers=headers, retry=retry, session=session)

    class _Client:
        def custom_query(self, query: str) -> Series:
            return conn.custom_query(query, timeout=timeout)  # type: ignore[no-any-return]

        def custom_query_range(self, query: str, start: float, end: float, step: float) -> Series:
            # A window's worth of points is a bigger answer than an instant query: more time.
            return conn.custom_query_range(  # type: ignore[no-any-return]
                query,
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(end, UTC),
                f"{step:g}",
                timeout=4 * timeout,
            )

    return _Client()


class PrometheusSource:
    """Batched readings for many deployments from one Prometheus.

    `max_age_seconds` is the staleness limit: two scrape intervals. `deadline_seconds` is how
    long one fetch waits for all its answers (shorter than the tick interval).

    An SLO window's counts query reads every raw sample of the window (days of them), and
    its answer moves by a tick's requests in a window's: it is sent again only once its last
    answer is older than a hundredth of the window, and `COUNTS_EVERY_S` at most (every tick
    for windows under 25 min at 15 s ticks); rounds in between reuse that answer.
    """

    COUNTS_EVERY_S = 300.0
    # Mergeable texts (`QuerySet.mergeable`) per query: each part is tagged with its index in
    # `PART_LABEL` (`label_replace`) and the parts joined with `or`, which keeps every series
    # since the tags differ; the answer is split by tag back into one vector per text, so
    # attribution and bad values are as if each had been sent alone. Three parts keep each
    # answer small (a thousand deployments' two pools: 6,000 samples parsed at once).
    MERGE_PARTS = 3
    PART_LABEL = "costscaler_part"

    def __init__(
        self,
        client: PromClient,
        labels: SeriesLabels,
        max_age_seconds: float,
        deadline_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.labels = labels
        self.max_age = max_age_seconds
        self.deadline = deadline_seconds
        self.clock = clock
        # SLO window counts query -> (when answered, its answer), reused until due again.
        self.counted: dict[str, tuple[float, Grouped]] = {}
        # Two threads: queries overlap, and few threads keep few malloc arenas of parsed JSON.
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="prometheus")
        # Queries sent by an earlier fetch whose thread still waits for the answer.
        self.waiting: dict[str, Future[dict[str, Grouped] | str]] = {}

    async def fetch(self, targets: Sequence[Target]) -> tuple[dict[Key, Reading], FetchReport]:
        """One reading per target; each distinct query text is sent once, concurrently.

        Returns by the deadline whatever Prometheus does: a query unanswered by then, or still
        unanswered from an earlier fetch, is a failed query (`QueryFailed` readings).
        """
        now = self.clock()
        kept = self._counts_kept(targets, now)
        texts = [
            q for q in dict.fromkeys(q for t in targets for q in t.queries.texts()) if q not in kept
        ]
        queries = self._merge(texts, {q for t in targets for q in t.queries.mergeable})
        report = FetchReport(queries=len(queries))
        results: dict[str, dict[str, Grouped] | str] = {}
        sent: dict[str, Future[dict[str, Grouped] | str]] = {}
        for query, parts in queries.items():
            if query in self.waiting:  # sending it again would queue behind the hung one
                results[query] = "no answer yet to the same query sent by an earlier fetch"
            else:
                sent[query] = self._send(query, parts)
        if sent:
            await asyncio.wait(
                [asyncio.wrap_future(f) for f in sent.values()], timeout=self.deadline
            )
        for query, future in sent.items():
            if future.done() and not future.cancelled():
                results[query] = future.result()
            else:
                future.cancel()  # one not started yet never runs; a running one stays `waiting`
                results[query] = f"no answer within the {self.deadline:g} s deadline"
        vectors: dict[str, Grouped] = dict(kept)
        for query, parts in queries.items():
            result = results[query]
            if isinstance(result, str):
                report.errors += 1
                report.failed |= dict.fromkeys(parts, result)
            else:
                vectors |= result
        self.counted = {text: self.counted[text] for text in kept} | {
            t.queries.slo_counts: (now, vectors[t.queries.slo_counts])
            for t in targets
            if t.queries.slo_counts in vectors and t.queries.slo_counts not in kept
        }
        readings = {t.key: self._reading(t, vectors, report.failed) for t in targets}
        return readings, report

    def _counts_kept(self, targets: Sequence[Target], now: float) -> dict[str, Grouped]:
        """The SLO window counts answered recently enough to reuse this round.

        An answer without a series for one of its deployments (one created since, or whose
        histogram had no sample yet) is asked again at once: reusing it would leave that
        deployment's error budget unknown for a whole refresh period."""
        kept: dict[str, Grouped] = {}
        stale: set[str] = set()
        for t in targets:
            text = t.queries.slo_counts
            if text is None or text not in self.counted:
                continue
            every = min(self.COUNTS_EVERY_S, t.slo_window_seconds / 100)
            taken, vector = self.counted[text]
            if now - taken >= every or t.key not in vector.by_key:
                stale.add(text)
            elif text not in stale:
                kept[text] = vector
        return {text: vector for text, vector in kept.items() if text not in stale}

    def _merge(self, texts: list[str], mergeable: set[str]) -> dict[str, tuple[str, ...]]:
        """The queries to send, each with the texts it answers: mergeable texts `MERGE_PARTS`
        at a time, tagged and joined with `or`; every other text alone."""
        alone = [q for q in texts if q not in mergeable]
        merged = [q for q in texts if q in mergeable]
        queries: dict[str, tuple[str, ...]] = {q: (q,) for q in alone}
        for at in range(0, len(merged), self.MERGE_PARTS):
            parts = tuple(merged[at : at + self.MERGE_PARTS])
            if len(parts) == 1:
                queries[parts[0]] = parts
                continue
            query = " or ".join(
                f'label_replace(({q}), "{self.PART_LABEL}", "{i}", "", "")'
                for i, q in enumerate(parts)
            )
            queries[query] = parts
        return queries

    def _send(self, query: str, parts: tuple[str, ...]) -> Future[dict[str, Grouped] | str]:
        future = self.pool.submit(self._run, query, parts)
        self.waiting[query] = future
        # Called in the pool's thread or here; a dict pop of one key is atomic under the GIL.
        future.add_done_callback(lambda _: self.waiting.pop(query, None))
        return future

    def _run(self, query: str, parts: tuple[str, ...]) -> dict[str, Grouped] | str:
        try:
            vector = self.client.custom_query(query)
        except Exception as exc:  # any client failure is a failed query
            return f"{type(exc).__name__}: {exc}"[:500]
        # Compacted in this thread, as soon as it arrives: the parsed JSON is dropped before
        # the other answers come, so the round's peak holds few of them at once.
        if len(parts) == 1:
            return {parts[0]: self._group(vector)}
        by_part: dict[str, Series] = {str(i): [] for i in range(len(parts))}
        for sample in vector:
            # Every series of the answer carries its part's tag; taken off, the sample reads
            # (and a bad one is reported) as if its text had been sent alone.
            tag = sample.get("metric", {}).pop(self.PART_LABEL, None)
            if tag in by_part:
                by_part[tag].append(sample)
        return {q: self._group(by_part[str(i)]) for i, q in enumerate(parts)}

    def _group(self, vector: Series) -> Grouped:
        grouped = Grouped()
        pool_label = self.labels.pool
        for sample in vector:
            labels = sample.get("metric", {})
            ns, dep = labels.get(self.labels.namespace), labels.get(self.labels.deployment)
            pool, le = labels.get(pool_label), labels.get("le")
            kept = (
                None if pool is None else sys.intern(pool),
                None if le is None else sys.intern(le),
                _value(sample),
            )
            if ns is None and dep is None:
                grouped.anonymous.append(kept)
            else:
                grouped.by_key.setdefault((ns, dep), []).append(kept)
        return grouped

    def _reading(self, t: Target, vectors: dict[str, Grouped], failed: dict[str, str]) -> Reading:
        q = t.queries
        for text in q.required():
            if text in failed:
                return Reading(problem="QueryFailed", message=f"{text}: {failed[text]}")
        try:
            self._check_fresh(t, vectors.get(q.freshness or "", Grouped()), q.freshness is not None)
            rates = self._per_pool(t.key, vectors[q.request_rate], "request rate")
            if not rates:
                raise BadDataError("NoData", f"no request-rate series for {t.key[0]}/{t.key[1]}")
            tokens = (
                self._per_pool(t.key, vectors[q.token_rate], "token rate") if q.token_rate else {}
            )
            idle = sum(rates.values()) == 0
            latency, attainment = self._latency(t, vectors, idle=idle)
            ttft = self._token_latency(t, vectors, q.ttft_buckets, q.ttft, t.ttft, "ttft", idle)
            itl = self._token_latency(t, vectors, q.itl_buckets, q.itl, t.itl, "itl", idle)
        except BadDataError as bad:
            return Reading(problem=bad.reason, message=str(bad))
        token_rate = sum(tokens.values()) if tokens else None
        good, total = self._slo_counts(t, vectors)
        prompt = self._signal(t, vectors, q.prompt_token_rate, "prompt token rate")
        return Reading(
            rates,
            latency,
            attainment,
            token_rate,
            slo_good=good,
            slo_total=total,
            ttft_seconds=ttft[0],
            ttft_attainment=ttft[1],
            itl_seconds=itl[0],
            itl_attainment=itl[1],
            queue_by_pool=self._signal(t, vectors, q.queue_depth, "queue depth"),
            kv_cache_by_pool=self._signal(t, vectors, q.kv_cache_usage, "KV-cache usage"),
            prompt_token_rate=sum(prompt.values()) if prompt else None,
        )

    def _token_latency(
        self,
        t: Target,
        vectors: dict[str, Grouped],
        buckets: str | None,
        direct: str | None,
        slo: tuple[float, float] | None,
        name: str,
        idle: bool,
    ) -> tuple[float | None, float | None]:
        """(quantile s, share within the threshold) of a stated TTFT or ITL objective.

        The objective must hold, so its series must exist: none is bad data (`NoData`, naming
        the query), as for the request rate, and the engine holds. Without traffic the
        histogram is there with rates of 0 and the quantile is undefined (None), not missing.
        """
        if slo is None or not (buckets or direct):
            return None, None
        quantile, threshold = slo
        text = buckets or direct or ""
        try:
            found = list(self._mine(t.key, vectors[text]))
        except BadDataError:
            if idle and not buckets:  # a user's histogram_quantile is NaN without traffic
                return None, None
            raise
        if not found:
            raise BadDataError("NoData", _missing(t, name, text))
        if buckets:
            pairs = self._buckets(t, vectors[text])
            return histogram_quantile(quantile, pairs), share_within(threshold, pairs)
        if len(found) > 1:
            raise BadDataError("MultipleSeries", f"{name}: {len(found)} series, expected one")
        return found[0][2], None

    def _signal(
        self, t: Target, vectors: dict[str, Grouped], text: str | None, what: str
    ) -> dict[str, float]:
        """A fast signal per pool; empty when not exported, failed or malformed (the signals
        only hasten decisions, so their absence never makes a reading unusable)."""
        if text is None or text not in vectors:
            return {}
        try:
            return self._per_pool(t.key, vectors[text], what)
        except BadDataError:
            return {}

    def _slo_counts(
        self, t: Target, vectors: dict[str, Grouped]
    ) -> tuple[float | None, float | None]:
        """(good, total) requests over the SLO window, or (None, None) when unknown: no
        counts query, it failed, no series yet, or buckets that are not a histogram."""
        text = t.queries.slo_counts
        if text is None or text not in vectors:
            return None, None
        try:
            pairs = self._buckets(t, vectors[text])
        except BadDataError:
            return None, None
        found = count_within(t.threshold_seconds, pairs) if pairs else None
        return (None, None) if found is None else found

    def _buckets(self, t: Target, vector: Grouped) -> list[tuple[float, float]]:
        """This deployment's (le, value) pairs; BadDataError on a missing or repeated `le`."""
        buckets: dict[float, float] = {}
        for _, label, value in self._mine(t.key, vector):
            le = float("nan" if label is None else label)
            if math.isnan(le) or le in buckets:
                raise BadDataError("MultipleSeries", "latency buckets: missing or repeated le")
            buckets[le] = value
        return list(buckets.items())

    def _mine(self, key: Key, vector: Grouped) -> Iterable[tuple[str | None, str | None, float]]:
        """This deployment's samples as (pool, le, value); BadDataError on an unusable value."""
        for pool, le, value in [*vector.by_key.get(key, []), *vector.anonymous]:
            if isinstance(value, Unusable):
                raise BadDataError(value.reason, f"{key}: {value.detail}")
            yield pool, le, value

    def _per_pool(self, key: Key, vector: Grouped, what: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for label, _, value in self._mine(key, vector):
            pool = "" if label is None else label
            if pool in found:
                raise BadDataError(
                    "MultipleSeries", f"{what}: more than one series for pool {pool!r}"
                )
            if value < 0:
                raise BadDataError("NegativeValue", f"{what}: negative value {value}")
            found[pool] = value
        return found

    def _latency(
        self, t: Target, vectors: dict[str, Grouped], idle: bool
    ) -> tuple[float | None, float | None]:
        if t.queries.latency_buckets:
            pairs = self._buckets(t, vectors[t.queries.latency_buckets])
            return (
                histogram_quantile(t.quantile, pairs),
                share_within(t.threshold_seconds, pairs),
            )
        try:
            found = list(self._mine(t.key, vectors[t.queries.latency or ""]))
        except BadDataError:
            # A mean latency is 0/0 = NaN without traffic: undefined, not bad data.
            if idle:
                return None, None
            raise
        if len(found) > 1:
            raise BadDataError("MultipleSeries", f"latency: {len(found)} series, expected one")
        return (found[0][2] if found else None), None

    def _check_fresh(self, t: Target, vector: Grouped, required: bool) -> None:
        if not required:
            return
        ages = [age for _, _, age in self._mine(t.key, vector)]
        if ages and max(ages) > self.max_age:
            raise BadDataError(
                "StaleMetrics",
                f"newest sample is {max(ages):.0f} s old, over the {self.max_age:.0f} s limit "
                "(two scrape intervals)",
            )


def _missing(t: Target, name: str, text: str) -> str:
    """The message of a stated TTFT or ITL objective without a series."""
    return (
        f"no {name.upper()} series for {t.key[0]}/{t.key[1]}, which spec.slo.{name} needs: "
        f"{text} returned nothing for it (does the model server export it, and does the "
        "scrape keep the deployment's labels?)"
    )


def _value(sample: dict[str, Any]) -> float | Unusable:
    """A sample's value, or why a tick must not use it (reported by the deployment reading it)."""
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return Unusable("MalformedResult", f"sample without a value: {sample}")
    if math.isnan(value) or math.isinf(value):
        return Unusable("InvalidValue", f"value {value} in {sample.get('metric', {})}")
    return value
