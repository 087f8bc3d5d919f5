"""LLM series (issue 17): TTFT and ITL objectives, queue and KV-cache signals, token rates.

A stated TTFT or ITL objective must be checkable: its missing series is bad data that names the
query. The fast signals are optional: a server without them, or a failed query, leaves the
reading usable.
"""

from __future__ import annotations

import asyncio

import pytest
from prom_answers import answer

from costscaler.adapters.prometheus import PrometheusSource, Target
from costscaler.adapters.promql import PRESETS, SeriesLabels, build_queries
from costscaler.api.deployment import SLO, Metrics, MetricsPreset

LABELS = SeriesLabels()
STATED = SLO.model_validate(
    {
        "latency": {"thresholdSeconds": 15},
        "ttft": {"quantile": 0.95, "thresholdSeconds": 1.0},
        "itl": {"quantile": 0.9, "thresholdSeconds": 0.05},
    }
)
LLM = build_queries(Metrics(preset=MetricsPreset.VLLM), LABELS, "1m", slo=STATED)
DEP = {"namespace": "ml", "deployment": "llama"}


def sample(value: float, **labels: str) -> dict:
    return {"metric": {**DEP, **labels}, "value": [1700000000.0, str(value)]}


def histogram(*pairs: tuple[str, float]) -> list[dict]:
    return [sample(v, le=le) for le, v in pairs]


class Prom:
    """Canned vectors per query text; `fail` raises, every query sent is recorded."""

    def __init__(self, answers: dict[str, list[dict]], fail: frozenset[str] = frozenset()):
        self.answers, self.fail, self.sent = answers, fail, []

    def custom_query(self, query: str) -> list[dict]:
        self.sent.append(query)
        return answer(self.answers, self.fail, query)


def answers(**drop: bool) -> dict[str, list[dict]]:
    found = {
        LLM.request_rate: [sample(3.0, pool="l4"), sample(1.0, pool="a100")],
        LLM.latency_buckets: histogram(("5", 2.0), ("15", 4.0), ("+Inf", 4.0)),
        LLM.token_rate: [sample(800.0, pool="l4")],
        LLM.freshness: [sample(1.0, pool="l4")],
        # 3 of 4 req/s get their first token within 0.5 s, all within 2 s.
        LLM.ttft_buckets: histogram(("0.5", 3.0), ("2", 4.0), ("+Inf", 4.0)),
        LLM.itl_buckets: histogram(("0.025", 100.0), ("0.05", 700.0), ("+Inf", 800.0)),
        LLM.queue_depth: [sample(7.0, pool="l4"), sample(0.0, pool="a100")],
        LLM.kv_cache_usage: [sample(0.92, pool="l4"), sample(0.3, pool="a100")],
        LLM.prompt_token_rate: [sample(3000.0, pool="l4"), sample(1000.0, pool="a100")],
    }
    for name in drop:
        found.pop(getattr(LLM, name))
    return found


def read(client: Prom, queries=LLM):
    source = PrometheusSource(client, LABELS, max_age_seconds=60.0)
    target = Target(("ml", "llama"), queries, 0.95, 15.0, ttft=(0.95, 1.0), itl=(0.9, 0.05))
    readings, report = asyncio.run(source.fetch([target]))
    return readings[("ml", "llama")], report


def test_ttft_itl_and_the_fast_signals_are_read_per_deployment_and_pool():
    r, report = read(Prom(answers()))
    assert r.problem is None
    assert r.ttft_seconds == pytest.approx(0.5 + 1.5 * (3.8 - 3.0))  # p95 in the (0.5, 2] bucket
    assert r.ttft_attainment == pytest.approx(0.75 + 0.25 * (0.5 / 1.5))  # 1 s, interpolated
    assert r.itl_attainment == pytest.approx(700 / 800)
    assert r.queue_by_pool == {"l4": 7.0, "a100": 0.0} and r.queue_depth == 7.0
    assert r.kv_cache_by_pool == {"l4": 0.92, "a100": 0.3} and r.kv_cache_usage == 0.92
    assert (r.prompt_token_rate, r.token_rate) == (4000.0, 800.0)
    # Nine texts, whatever the deployments: three histograms alone, six per pool in two.
    assert len(LLM.texts()) == 9 and report.queries == 5


@pytest.mark.parametrize(("dropped", "name"), [("ttft_buckets", "TTFT"), ("itl_buckets", "ITL")])
def test_a_stated_objective_without_its_series_holds_naming_the_query(dropped: str, name: str):
    r, _ = read(Prom(answers(**{dropped: True})))
    assert r.problem == "NoData" and r.request_rate is None
    assert f"no {name} series for ml/llama, which spec.slo.{name.lower()} needs" in r.message
    assert getattr(LLM, dropped) in r.message


def test_idle_histograms_are_data_not_missing():
    idle = answers()
    idle[LLM.ttft_buckets] = histogram(("0.5", 0.0), ("+Inf", 0.0))
    r, _ = read(Prom(idle))
    assert r.problem is None and (r.ttft_seconds, r.ttft_attainment) == (None, None)


def test_missing_or_failed_fast_signals_leave_the_reading_usable():
    r, _ = read(Prom(answers(queue_depth=True, kv_cache_usage=True)))
    assert r.problem is None and (r.queue_depth, r.kv_cache_usage) == (None, None)
    r, report = read(Prom(answers(), fail=frozenset({LLM.prompt_token_rate})))
    assert r.problem is None and r.prompt_token_rate is None and report.errors == 1


def test_an_objective_not_stated_is_not_queried():
    plain = build_queries(Metrics(preset=MetricsPreset.VLLM), LABELS, "1m")
    assert (plain.ttft_buckets, plain.itl_buckets) == (None, None)
    assert not any("time_to_first_token" in q for q in plain.texts())


def test_renamed_vllm_series_are_read_under_either_name_in_one_query():
    assert LLM.itl_buckets == (
        "(sum by (namespace, deployment, le) (rate(vllm:inter_token_latency_seconds_bucket[1m])))"
        " or (sum by (namespace, deployment, le) "
        "(rate(vllm:time_per_output_token_seconds_bucket[1m])))"
    )
    assert LLM.kv_cache_usage == (
        "(avg by (namespace, deployment, pool) (vllm:kv_cache_usage_perc))"
        " or (avg by (namespace, deployment, pool) (vllm:gpu_cache_usage_perc))"
    )


@pytest.mark.parametrize(
    ("preset", "series"),
    [
        (MetricsPreset.VLLM, ["vllm:time_to_first_token_seconds_bucket",
                              "vllm:num_requests_waiting", "vllm:prompt_tokens_total",
                              "vllm:e2e_request_latency_seconds"]),
        (MetricsPreset.SGLANG, ["sglang:time_to_first_token_seconds_bucket",
                                "sglang:inter_token_latency_seconds_bucket",
                                "sglang:num_queue_reqs", "sglang:token_usage",
                                "sglang:prompt_tokens_total", "sglang:num_requests_total"]),
        (MetricsPreset.TGI, ["tgi_request_mean_time_per_token_duration_bucket", "tgi_queue_size",
                             "tgi_request_input_length_sum", "tgi_request_success"]),
    ],
)  # fmt: skip
def test_each_llm_preset_reads_its_servers_names(preset: MetricsPreset, series: list[str]):
    slo = STATED if preset != MetricsPreset.TGI else STATED.model_copy(update={"ttft": None})
    text = " ".join(build_queries(Metrics(preset=preset), LABELS, "1m", slo=slo).texts())
    assert all(name in text for name in series), [n for n in series if n not in text]


def test_tgi_exports_no_ttft_or_kv_cache():
    assert PRESETS[MetricsPreset.TGI].ttft == () == PRESETS[MetricsPreset.TGI].kv_cache


def test_user_ttft_and_itl_queries_run_scoped_and_return_the_quantile():
    m = Metrics(
        preset=MetricsPreset.GENERIC,
        request_rate="sum(rate(req_total[1m]))",
        latency="lat",
        ttft="ttft_p95",
        itl="itl_p90",
    )
    q = build_queries(m, LABELS, "1m", "ml", slo=STATED)
    assert (q.ttft, q.itl, q.ttft_buckets) == (
        'ttft_p95{namespace="ml"}',
        'itl_p90{namespace="ml"}',
        None,
    )
    prom = Prom({
        q.request_rate: [sample(2.0)], q.latency: [sample(3.0)],
        q.ttft: [sample(0.7)], q.itl: [sample(0.04)],
    })  # fmt: skip
    r, _ = read(prom, q)
    assert (r.problem, r.ttft_seconds, r.itl_seconds) == (None, 0.7, 0.04)
