"""Request-size-aware allocation (issue 17, item 3; Melange): C(x), its bound, the plans."""

from __future__ import annotations

import copy
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from core_helpers import steady
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests, parse_resource
from costscaler.cli import main
from costscaler.core import Observations, Planner, PoolView, Settings, pool_views, sizes
from costscaler.core.allocate import evaluate
from costscaler.core.exact import brute_force, optimum
from costscaler.core.forecast import forecast
from costscaler.core.step import problem
from costscaler.core.types import EngineState
from costscaler.errors import UserError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples/deployments/llama-3-1-8b-vllm.yaml"

# Two types: the small one is 5 x cheaper per short request, 2 x dearer per long one.
SMALL = PoolView(
    "small",
    spot=False,
    replica_cost_per_hour=0.8,
    capacity_rps=1.0,
    cold_start_s=300.0,
    base_latency_s=2.0,
    bucket_rps=(8.0, 0.25),
)
LARGE = PoolView(
    "large",
    spot=False,
    replica_cost_per_hour=4.0,
    capacity_rps=4.0,
    cold_start_s=300.0,
    base_latency_s=2.0,
    bucket_rps=(8.0, 2.5),
)


def lp_capacity(rates: np.ndarray, share: np.ndarray, x: np.ndarray) -> float:
    """max lambda with each size routed to the types that serve it (scipy's HiGHS): the LP
    `core.sizes` solves in closed form, written out independently."""
    n, b = rates.shape
    cost = np.zeros(n * b + 1)
    cost[-1] = -1.0
    a_eq = np.zeros((b, n * b + 1))
    for j in range(b):
        a_eq[j, [i * b + j for i in range(n)]] = 1.0
        a_eq[j, -1] = -share[j]
    a_ub = np.zeros((n, n * b + 1))
    for i in range(n):
        for j in range(b):
            if rates[i, j] > 0:
                a_ub[i, i * b + j] = 1.0 / rates[i, j]
    bounds = [(0.0, 0.0 if rates[i, j] <= 0 else None) for i in range(n) for j in range(b)]
    res = optimize.linprog(
        cost, A_ub=a_ub, b_ub=x, A_eq=a_eq, b_eq=np.zeros(b), bounds=[*bounds, (0.0, None)]
    )
    assert res.status == 0
    return float(-res.fun)


def _random_rates(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """1-4 accelerator types (some pools sharing one), 1-6 sizes, some sizes not served by
    some types, some shares 0."""
    g, b = int(rng.integers(1, 5)), int(rng.integers(1, 7))
    c = rng.uniform(0.2, 5.0, (g, b)) * (rng.random((g, b)) > 0.25)
    for j in range(b):
        if not (c[:, j] > 0).any():
            c[int(rng.integers(g)), j] = rng.uniform(0.2, 5.0)
    kind = np.concatenate((np.arange(g), rng.integers(0, g, int(rng.integers(0, 3)))))
    share = rng.random(b) * (rng.random(b) > 0.2)
    if share.sum() == 0:
        share[0] = 1.0
    return c[kind], share / share.sum()


def test_capacity_is_the_routing_lp_and_the_bound_holds() -> None:
    rng = np.random.default_rng(17)
    for _ in range(200):
        rates, share = _random_rates(rng)
        mix = sizes.mix_capacity(sizes.directions(rates), share)
        assert mix is not None
        for _ in range(3):
            x = rng.integers(0, 6, rates.shape[0]).astype(np.float64)
            want = lp_capacity(rates, share, x)
            got, part = mix.attributed(x[None, :])
            assert got[0] == pytest.approx(want, rel=1e-7, abs=1e-9)
            assert part.sum() == pytest.approx(got[0])
            assert float(mix.bound @ x) >= want * (1.0 - 1e-9) - 1e-12


@st.composite
def _instances(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pool capacities per size over six decades (0: not served; every size served
    somewhere), shares (some 0) and a plan."""
    n, b = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    rate = st.one_of(st.just(0.0), st.floats(1e-3, 1e3))
    rates = np.array(draw(st.lists(st.lists(rate, min_size=b, max_size=b), min_size=n, max_size=n)))
    for j in range(b):
        if not (rates[:, j] > 0).any():
            rates[draw(st.integers(0, n - 1)), j] = draw(st.floats(1e-3, 1e3))
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=b, max_size=b)))
    # Smaller shares are below what the reference LP resolves: HiGHS's feasibility
    # tolerance (1e-7) lets a size of share 1e-9 pass unserved (`core.sizes` says 0 then).
    share[share < 1e-3] = 0.0
    if not share.sum() > 1e-6:
        share[draw(st.integers(0, b - 1))] = 1.0
    plan = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), dtype=float)
    return rates, share / share.sum(), plan


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_instances())
def test_capacity_matches_the_lp_on_any_rates(case: tuple[np.ndarray, ...]) -> None:
    rates, share, x = case
    mix = sizes.mix_capacity(sizes.directions(rates), share)
    assert mix is not None
    want = lp_capacity(rates, share, x)
    got = float(mix.capacity(x[None, :])[0])
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
    assert float(mix.bound @ x) >= want * (1.0 - 1e-6) - 1e-9


def test_one_size_is_the_sum_of_the_replicas_capacities() -> None:
    rates = np.array([[3.0], [5.0], [3.0]])
    mix = sizes.mix_capacity(sizes.directions(rates), np.ones(1))
    assert mix is not None
    x = np.array([[2.0, 1.0, 4.0], [0.0, 3.0, 0.0]])
    assert mix.capacity(x) == pytest.approx(x @ rates[:, 0])
    assert mix.single == pytest.approx(rates[:, 0])


def test_one_size_plans_as_the_model_without_sizes() -> None:
    """A single size is the old model: the same V for every plan, the same optimum."""
    plain = [
        PoolView("a", spot=False, replica_cost_per_hour=1.0, capacity_rps=2.0, cold_start_s=300),
        PoolView("b", spot=True, replica_cost_per_hour=0.4, capacity_rps=3.0, cold_start_s=300),
    ]
    sized = [
        PoolView(
            p.name,
            spot=p.spot,
            replica_cost_per_hour=p.replica_cost_per_hour,
            capacity_rps=1.0,
            cold_start_s=300,
            bucket_rps=(p.capacity_rps,),
        )
        for p in plain
    ]
    obs = steady(9.0)
    demand = forecast(obs.times, obs.request_rate, 300.0)
    base = Settings(latency_threshold_s=5.0, replicas_max=12)
    one = Settings(latency_threshold_s=5.0, replicas_max=12, size_names=("x",), size_shares=(1,))
    a = problem(Planner(plain, base), EngineState(), demand)
    b = problem(Planner(sized, one), EngineState(), demand, size_share=np.ones(1))
    plans = np.array(list(itertools.product(range(8), range(8))), dtype=np.int64)
    assert evaluate(b, plans)[1] == pytest.approx(evaluate(a, plans)[1], abs=1e-12)
    assert optimum(a).replicas.tolist() == optimum(b).replicas.tolist()


def test_the_exact_search_finds_the_optimum_with_sizes() -> None:
    """The branch and bound prunes on `MixCapacity.bound`: it must never drop the optimum."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        rates, share = _random_rates(rng)
        n = min(rates.shape[0], 3)
        pools = [
            PoolView(
                f"p{i}",
                spot=bool(rng.random() < 0.3),
                replica_cost_per_hour=float(rng.uniform(0.3, 4.0)),
                capacity_rps=1.0,
                cold_start_s=300.0,
                interruption_rate_per_hour=0.2,
                max_replicas=int(rng.integers(2, 7)),
                bucket_rps=tuple(rates[i].tolist()),
            )
            for i in range(n)
        ]
        names = tuple(f"s{j}" for j in range(rates.shape[1]))
        st = Settings(
            latency_threshold_s=float(rng.uniform(2.0, 10.0)),
            replicas_max=12,
            spot_max_fraction=1.0,
            size_names=names,
            size_shares=tuple(share.tolist()),
        )
        pl = Planner(pools, st)
        obs = steady(float(rng.uniform(0.5, 12.0)))
        demand = forecast(obs.times, obs.request_rate, pl.horizon_s)
        prob = problem(pl, EngineState(), demand, size_share=share)
        best = brute_force(prob)
        assert best is not None
        assert optimum(prob).objective == pytest.approx(best.objective, rel=1e-9, abs=1e-9)


# Mostly short requests, a few long ones, declared: the mix the routing tests plan on.
SHORT_LONG = Settings(
    latency_threshold_s=10.0,
    replicas_max=80,
    size_names=("short", "long"),
    size_shares=(0.8, 0.2),
)


def test_sizes_route_short_requests_to_the_small_type() -> None:
    """Melange's point: with mostly short requests and a few long ones, a mix of the two
    types costs less than either alone, and the plan is that mix."""
    pl = Planner([SMALL, LARGE], SHORT_LONG)
    mixed = pl.decide(steady(20.0), {}, 3600.0, alternatives=False)
    assert mixed.replicas["small"] > 0 and mixed.replicas["large"] > 0
    for alone in (SMALL, LARGE):
        single = Planner([alone], SHORT_LONG).decide(steady(20.0), {}, 3600.0, alternatives=False)
        assert mixed.cost_per_hour < single.cost_per_hour


def test_observed_sizes_override_the_declared_shares() -> None:
    pl = Planner([SMALL, LARGE], SHORT_LONG)
    obs = steady(20.0)
    n = obs.times.size
    seen = Observations(
        times=obs.times,
        request_rate=obs.request_rate,
        latency=obs.latency,
        request_size_rate={"short": np.full(n, 20.0), "long": np.zeros(n)},
    )
    shares = sizes.shares(seen, SHORT_LONG.size_names, SHORT_LONG.size_shares)
    assert shares == pytest.approx([1.0, 0.0])
    only_short = pl.decide(seen, {}, 3600.0, alternatives=False)
    assert only_short.replicas["large"] == 0  # no long requests: the small type alone
    declared = pl.decide(obs, {}, 3600.0, alternatives=False)
    assert declared.replicas["large"] > 0
    assert "Request sizes as declared (requestSizes[].share): short 80%, long 20%" in (
        declared.message
    )
    assert "observed over the last 2 minutes: short 100%, long 0%" in only_short.message


def test_too_many_types_and_sizes_is_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    pools = [
        PoolView(
            f"p{i}",
            spot=False,
            replica_cost_per_hour=1.0,
            capacity_rps=1.0,
            cold_start_s=300.0,
            bucket_rps=tuple(rng.uniform(1.0, 5.0, 16).tolist()),
        )
        for i in range(8)
    ]
    names = tuple(f"s{j}" for j in range(16))
    with pytest.raises(ValueError, match=r"fewer workload\.requestSizes"):
        Planner(pools, Settings(latency_threshold_s=5.0, size_names=names))


def _example_pools() -> list[CapacityPool]:
    pools = load_manifests(str(EXAMPLE.parents[1] / "pools"))
    return [p for p in pools if isinstance(p, CapacityPool)]


def _sized(shares: list[float | None]) -> dict[str, Any]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    work = doc["spec"]["workload"]
    work["requestSizes"] = [
        {"name": "short", "inputTokens": {"max": 512}, "outputTokens": {"max": 256}},
        {"name": "long", "inputTokens": {"min": 4096, "max": 8192}, "outputTokens": {"max": 256}},
    ]
    for size, share in zip(work["requestSizes"], shares, strict=True):
        if share is not None:
            size["share"] = share
    for entry in work["capacity"]:
        entry["buckets"] = [{"size": "short", "requestsPerSecond": 2.0}]
        if entry["accelerator"] != "L4":
            entry["buckets"].append({"size": "long", "requestsPerSecond": 0.4})
    doc["spec"].pop("slo", None)
    doc["spec"]["slo"] = {"latency": {"quantile": 0.95, "thresholdSeconds": 20}}
    return doc


def test_declared_shares_reach_the_planner() -> None:
    res = parse_resource(copy.deepcopy(_sized([3.0 / 4.0, 1.0 / 4.0])), "t.yaml")
    assert isinstance(res, InferenceDeployment)
    st = Settings.from_spec(res.spec)
    assert st.size_names == ("short", "long") and st.size_shares == (0.75, 0.25)


def test_shares_on_some_sizes_only_are_refused() -> None:
    with pytest.raises(UserError, match="share on every size or on none"):
        parse_resource(_sized([0.5, None]), "t.yaml")


def test_a_bucket_left_out_cannot_serve_that_size() -> None:
    """The L4 lists no long bucket: a plan of L4s alone serves none of a mix with long
    requests, so C is 0, and a plan with the other type serves the long ones there."""
    rates = np.array([[2.0, 0.0], [2.0, 0.4]])
    mix = sizes.mix_capacity(sizes.directions(rates), np.array([0.5, 0.5]))
    assert mix is not None
    assert mix.capacity(np.array([[5.0, 0.0]]))[0] == 0.0
    # One large replica serves 0.4 long req/s at most: the mix then at 0.8 req/s, the
    # small replicas taking all the short ones.
    assert mix.capacity(np.array([[5.0, 1.0]]))[0] == pytest.approx(0.8)
    assert math.isfinite(float(mix.single[0]))


def test_a_bucket_without_a_rate_takes_it_from_the_token_profile() -> None:
    """The example's L4 (3,800 prefill, 400 decode tokens/s) serves the short size (0-512
    prompt, 0-256 output tokens) at 1 / (256 / 3800 + 128 / 400) req/s."""
    doc = _sized([None, None])
    for entry in doc["spec"]["workload"]["capacity"]:
        for bucket in entry["buckets"]:
            bucket.pop("requestsPerSecond")
    res = parse_resource(doc, "t.yaml")
    assert isinstance(res, InferenceDeployment)
    pool = next(
        p for p in pool_views(res.spec, _example_pools()) if p.name == "g6-xlarge-l4-ondemand"
    )
    assert pool.bucket_rps == pytest.approx((1.0 / (256 / 3800 + 128 / 400), 0.0))


def test_a_bucket_without_a_rate_needs_a_token_profile() -> None:
    doc = _sized([None, None])
    entry = doc["spec"]["workload"]["capacity"][0]
    for key in ("prefillTokensPerSecond", "decodeTokensPerSecond", "maxConcurrentSequences"):
        entry.pop(key, None)
    entry["buckets"][0].pop("requestsPerSecond")
    with pytest.raises(UserError, match="required without a token profile"):
        parse_resource(doc, "t.yaml")


def _milp(
    rates: np.ndarray,
    share: np.ndarray,
    node_price: np.ndarray,
    per_node: np.ndarray,
    demand: float,
) -> float:
    """$/h of the cheapest whole nodes whose replicas serve `demand` req/s of the size mix
    with each size routed freely: Melange's integer program with node billing, by scipy's
    HiGHS (replicas x_g <= per_node_g n_g, req/s f_gb; sum_g f_gb = demand s_b,
    sum_b f_gb / c_gb <= x_g)."""
    g, b = rates.shape
    width = 2 * g + g * b
    cost = np.concatenate((np.zeros(g), node_price, np.zeros(g * b)))
    rows, lo, hi = [], [], []
    for j in range(b):
        row = np.zeros(width)
        row[[2 * g + i * b + j for i in range(g)]] = 1.0
        rows.append(row), lo.append(demand * share[j]), hi.append(demand * share[j])
    for i in range(g):
        row = np.zeros(width)
        row[i] = -1.0
        for j in range(b):
            if rates[i, j] > 0:
                row[2 * g + i * b + j] = 1.0 / rates[i, j]
        rows.append(row), lo.append(-np.inf), hi.append(0.0)
        fit = np.zeros(width)
        fit[i], fit[g + i] = 1.0, -float(per_node[i])
        rows.append(fit), lo.append(-np.inf), hi.append(0.0)
    upper = np.concatenate(
        (np.full(2 * g, np.inf), [np.inf if r > 0 else 0.0 for r in rates.ravel()])
    )
    res = optimize.milp(
        cost,
        constraints=optimize.LinearConstraint(np.array(rows), lo, hi),
        integrality=np.concatenate((np.ones(2 * g), np.zeros(g * b))),
        bounds=optimize.Bounds(0.0, upper),
    )
    assert res.status == 0, res.message
    return float(res.fun)


A2 = """apiVersion: costscaler.dev/v1alpha1
kind: CapacityPool
metadata: {name: a2-highgpu-1g-a100-ondemand}
spec:
  accelerator: {type: A100-40GB, countPerNode: 1, memoryGiB: 40}
  capacityType: OnDemand
  price: {hourly: "3.673"}
  coldStart: {nodeSeconds: 240}
  limits: {maxNodes: 64}
"""


@pytest.mark.parametrize("a100", ["p4d-24xlarge-a100-ondemand", "a2-highgpu-1g-a100-ondemand"])
@pytest.mark.parametrize("rate", [0.5, 2.0, 8.0, 32.0, 64.0])
def test_plan_is_within_5_percent_of_the_integer_optimum_for_its_capacity(
    rate: float, a100: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17's check on the example's own profiles (Melange's are not in the repository):
    `costscaler plan` on the Llama example with four request sizes (rates from its token
    profiles; the 24 GB GPUs leave out the long prompts) and on-demand pools, the A100s in
    8-GPU nodes (AWS p4d, billed whole) or one a node (GCP a2-highgpu-1g, REFERENCE.md's
    price), pays at most 5 % more than the cheapest whole nodes that serve what its plan
    serves."""
    doc = _sized([None, None])
    work = doc["spec"]["workload"]
    work["requestSizes"] = [
        {"name": "chat", "inputTokens": {"max": 1000}, "outputTokens": {"max": 300}, "share": 0.5},
        {
            "name": "code",
            "inputTokens": {"min": 1001, "max": 3000},
            "outputTokens": {"max": 300},
            "share": 0.3,
        },
        {
            "name": "essay",
            "inputTokens": {"max": 1000},
            "outputTokens": {"min": 301, "max": 1500},
            "share": 0.1,
        },
        {
            "name": "rag",
            "inputTokens": {"min": 3001, "max": 7000},
            "outputTokens": {"max": 300},
            "share": 0.1,
        },
    ]
    for entry in work["capacity"]:
        served = ["chat", "code", "essay"] + (
            ["rag"] if entry["accelerator"] == "A100-40GB" else []
        )
        entry["buckets"] = [{"size": s} for s in served]
    doc["spec"]["pools"] = [
        {"name": "g6-xlarge-l4-ondemand"},
        {"name": "g5-xlarge-a10g-ondemand"},
        {"name": a100},
    ]
    doc["spec"]["replicas"] = {"min": 1, "max": 200}
    doc["spec"]["spot"] = {"maxFraction": 0.0, "minOnDemandReplicas": 0}
    doc["spec"].pop("budgetRef", None)
    path = tmp_path / "sized.yaml"
    path.write_text(yaml.safe_dump(doc))
    pools = tmp_path / "pools"
    pools.mkdir()
    for src in (EXAMPLE.parents[1] / "pools").glob("*.yaml"):
        (pools / src.name).write_text(src.read_text())
    (pools / "a2.yaml").write_text(A2)
    assert main(["plan", "-f", str(path), "-p", str(pools), "--rate", str(rate), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    res = parse_resource(doc, "t.yaml")
    assert isinstance(res, InferenceDeployment)
    every = [r for r in load_manifests(str(pools)) if isinstance(r, CapacityPool)]
    views = pool_views(res.spec, every)
    names = [v.name for v in views]
    assert names == [p["name"] for p in doc["spec"]["pools"]]
    rates = np.array([v.bucket_rps for v in views])
    share = np.array([5.0, 3.0, 1.0, 1.0]) / 10.0
    x = np.array([plan["replicas"][n] for n in names], dtype=np.float64)
    per_node = np.array([v.replicas_per_node for v in views])
    node_price = np.array([v.replica_cost_per_hour for v in views]) * per_node
    paid = float(np.ceil(x / per_node) @ node_price)
    served = lp_capacity(rates, share, x)
    assert served > 0
    best = _milp(rates, share, node_price, per_node, served)
    assert paid <= best * 1.05 + 1e-9, (plan["replicas"], paid, best)


def test_idle_accelerators_count_the_plan_at_its_size_aware_capacity() -> None:
    """Idle accelerators are the plan's share of capacity unused at the current rate, and
    with sizes that capacity is C(x), not the pools' capacities alone summed."""
    d = Planner([SMALL, LARGE], SHORT_LONG).decide(steady(20.0), {}, 3600.0, alternatives=False)
    x = np.array([d.replicas["small"], d.replicas["large"]], dtype=np.float64)
    rates = np.array([SMALL.bucket_rps, LARGE.bucket_rps])
    served = lp_capacity(rates, np.array([0.8, 0.2]), x)
    assert d.idle_accelerators == pytest.approx(x.sum() * (1.0 - 20.0 / served), rel=1e-6)


def test_the_cheapest_relaxed_plan_serves_the_mix_at_least_cost() -> None:
    """`MixCapacity.cheapest` (the search's start) serves 1 req/s of the mix, and no plan
    of the allowed pools serves it for less per req/s, against scipy's LP of the relaxed
    program (min price . x over x and routings with C(x) >= 1)."""
    rng = np.random.default_rng(11)
    for _ in range(50):
        rates, share = _random_rates(rng)
        n, b = rates.shape
        price = rng.uniform(0.2, 5.0, n)
        mix = sizes.mix_capacity(sizes.directions(rates), share)
        assert mix is not None
        unit = mix.cheapest(price, np.ones(n, dtype=np.bool_))
        assert unit is not None
        assert lp_capacity(rates, share, unit) == pytest.approx(1.0, rel=1e-6)
        # The relaxed program: variables x (n) then f (n x b).
        a_eq = np.zeros((b, n + n * b))
        a_ub = np.zeros((n, n + n * b))
        for i in range(n):
            a_ub[i, i] = -1.0
            for j in range(b):
                a_eq[j, n + i * b + j] = 1.0
                if rates[i, j] > 0:
                    a_ub[i, n + i * b + j] = 1.0 / rates[i, j]
        bounds = [(0.0, None)] * n + [
            (0.0, None if rates[i, j] > 0 else 0.0) for i in range(n) for j in range(b)
        ]
        res = optimize.linprog(
            np.concatenate((price, np.zeros(n * b))),
            A_ub=a_ub,
            b_ub=np.zeros(n),
            A_eq=a_eq,
            b_eq=share,
            bounds=bounds,
        )
        assert res.status == 0
        assert float(price @ unit) == pytest.approx(res.fun, rel=1e-6)


def test_the_cheapest_relaxed_plan_keeps_to_the_allowed_pools() -> None:
    mix = sizes.mix_capacity(sizes.directions(np.array([[2.0, 0.0], [1.0, 1.0]])), np.ones(2))
    assert mix is not None
    only_first = np.array([True, False])
    assert mix.cheapest(np.ones(2), only_first) is None  # the second size needs pool 2
    assert mix.cheapest(np.ones(2), ~only_first) == pytest.approx([0.0, 1.0])


MELANGE = EXAMPLE.parents[1] / "melange"


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
def test_plan_on_melange_profiles_is_within_5_percent_of_the_integer_optimum_at_its_demand(
    rate: float, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17's done-when: `costscaler plan` on the Llama-2-7B profiles built from the
    Melange paper (examples/melange: Table 1's GPUs and prices, 15 request sizes of the
    paper's Mixed workload, req/s per size at a 120 ms TPOT) pays at most 5 % more than the
    cheapest GPUs that serve the plan's own demand with each size routed freely (Melange's
    integer program, scipy's HiGHS), and its plan serves at least 95 % of that demand."""
    deployment = MELANGE / "llama-2-7b-melange.yaml"
    pools_path = MELANGE / "pools.yaml"
    assert (
        main(["plan", "-f", str(deployment), "-p", str(pools_path), "--rate", str(rate), "--json"])
        == 0
    )
    plan = json.loads(capsys.readouterr().out)
    res = next(r for r in load_manifests(str(deployment)) if isinstance(r, InferenceDeployment))
    every = [r for r in load_manifests(str(pools_path)) if isinstance(r, CapacityPool)]
    views = pool_views(res.spec, every)
    assert [v.name for v in views] == [p.name for p in res.spec.pools]
    rates = np.array([v.bucket_rps for v in views])
    share = np.array([s.share for s in res.spec.workload.request_sizes or []])
    share = share / share.sum()
    x = np.array([plan["replicas"][v.name] for v in views], dtype=np.float64)
    price = np.array([v.replica_cost_per_hour for v in views])
    ones = np.ones(len(views))
    demand = float(plan["demand_rps"])
    assert demand >= rate
    best = _milp(rates, share, price, ones, demand)
    assert plan["cost_per_hour"] == pytest.approx(float(x @ price))
    assert plan["cost_per_hour"] <= best * 1.05, (plan["replicas"], plan["cost_per_hour"], best)
    assert lp_capacity(rates, share, x) >= 0.95 * demand, (plan["replicas"], demand)


def test_the_melange_example_states_the_profiles_its_builder_derives() -> None:
    """examples/melange's sizes, shares and req/s per bucket are what
    tests/bench/melange_profiles.py derives from the paper (120 ms TPOT, Mixed workload),
    so the example and its documented derivation cannot drift apart."""
    sys.path.insert(0, str(EXAMPLE.parents[2] / "tests" / "bench"))
    try:
        import melange_profiles as mp
    finally:
        sys.path.pop(0)
    deployment = MELANGE / "llama-2-7b-melange.yaml"
    res = next(r for r in load_manifests(str(deployment)) if isinstance(r, InferenceDeployment))
    work = res.spec.workload
    assert [s.name for s in work.request_sizes or []] == mp.bucket_names()
    declared = np.array([s.share for s in work.request_sizes or []])
    assert declared == pytest.approx(mp.shares("mixed"), rel=1e-3)
    prof = mp.profiles("120ms")
    assert [c.accelerator for c in work.capacity] == [g.accelerator for g in mp.GPUS]
    for gpu, entry in zip(mp.GPUS, work.capacity, strict=True):
        got = {b.size: b.requests_per_second for b in entry.buckets or []}
        want = {n: r for n, r in zip(mp.bucket_names(), prof[gpu.name], strict=True) if r > 0}
        assert got == want, gpu.name
    prices = {
        p.spec.accelerator.type: float(p.spec.price.hourly)
        for p in load_manifests(str(MELANGE / "pools.yaml"))
        if isinstance(p, CapacityPool)
    }
    assert prices == {g.accelerator: g.price for g in mp.GPUS}


@pytest.mark.parametrize("slo", ["120ms", "40ms"])
@pytest.mark.parametrize("workload", ["arena", "pubmed", "mixed"])
def test_plan_on_every_melange_workload_at_64_rps_is_within_5_percent_of_the_optimum(
    workload: str, slo: str
) -> None:
    """The paper's three workloads and two TPOT SLOs at 64 req/s (`bench_sizes.py
    --melange`): within 5 % of the integer optimum at the plan's demand, serving at least
    95 % of it. Rounding the relaxed start up on every pool left Arena at 120 ms on 18 A100s,
    +7.9 % (66.06 against 61.21 $/h), when the search's budget ran out."""
    sys.path.insert(0, str(EXAMPLE.parents[2] / "tests" / "bench"))
    try:
        import bench_sizes
    finally:
        sys.path.pop(0)
    got = bench_sizes.melange_check(bench_sizes.melange_doc(workload, slo), 64.0)
    assert got["cost"] <= got["optimum"] * 1.05, got
    assert got["capacity"] >= 0.95 * got["demand"], got
