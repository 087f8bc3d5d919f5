"""$/1M input and output tokens (issue 17, item 4): the split, the engine, `plan --json`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.cli import main
from costscaler.core import Observations, decide, pool_views
from costscaler.core.cost import cost_per_million_input_output
from costscaler.core.pools import token_capacity

ROOT = Path(__file__).resolve().parents[3]
DEP = str(ROOT / "examples" / "deployments" / "llama-3-1-8b-vllm.yaml")
POOLS = str(ROOT / "examples" / "pools")


def test_the_split_follows_each_phases_share_of_busy_time():
    # 4,000 input and 1,000 output tokens/s on 7,800 prefill and 1,300 decode tokens/s:
    # prefill is busy 0.513 of the time per unit, decode 0.769, so input gets 40 %.
    per_in, per_out = cost_per_million_input_output(3.6, 4000.0, 1000.0, 7800.0, 1300.0)
    assert per_in == pytest.approx(3.6 * 0.4 / (4000 * 3600) * 1e6)  # 0.1 $/1M
    assert per_out == pytest.approx(3.6 * 0.6 / (1000 * 3600) * 1e6)  # 0.6 $/1M
    # What the two phases cost adds up to the cost per hour.
    assert per_in * 4000 * 3600 / 1e6 + per_out * 1000 * 3600 / 1e6 == pytest.approx(3.6)


def test_without_token_profiles_every_token_costs_the_same():
    per_in, per_out = cost_per_million_input_output(3.6, 4000.0, 1000.0)
    assert per_in == pytest.approx(per_out) == pytest.approx(3.6 / (5000 * 3600) * 1e6)


@pytest.mark.parametrize(("prompt", "generation"), [(0.0, 100.0), (100.0, 0.0), (math.nan, 1.0)])
def test_no_figures_without_both_token_rates(prompt: float, generation: float):
    assert all(math.isnan(v) for v in cost_per_million_input_output(1.0, prompt, generation))


def _llama() -> tuple[InferenceDeployment, list[CapacityPool]]:
    dep = next(r for r in load_manifests(DEP) if isinstance(r, InferenceDeployment))
    return dep, [r for r in load_manifests(POOLS) if isinstance(r, CapacityPool)]


def test_token_capacity_sums_the_replicas_profiles():
    dep, pools = _llama()
    views = {v.name: v for v in pool_views(dep.spec, pools)}
    l4, a100 = "g6-xlarge-l4-ondemand", "p4d-24xlarge-a100-ondemand"
    assert token_capacity(list(views.values()), {l4: 2, a100: 1}) == (
        2 * 3800 + 9700,
        2 * 400 + 1750,
    )
    bare = views[l4].__class__(**{**views[l4].__dict__, "prefill_tokens_per_second": None})
    assert all(math.isnan(v) for v in token_capacity([bare], {l4: 1}))
    assert token_capacity([bare], {l4: 0}) == (0.0, 0.0)  # a pool with no replicas serves none


def test_the_engine_prices_its_plan_per_input_and_output_token():
    dep, pools = _llama()
    n = 241
    obs = Observations(
        times=np.arange(-3600.0, 1.0, 15.0),
        request_rate=np.full(n, 4.0),
        latency=np.full(n, math.nan),
        token_rate=np.full(n, 1000.0),
        prompt_token_rate=np.full(n, 4000.0),
    )
    d = decide(dep.spec, pools, obs, {}, 0.0)
    views = pool_views(dep.spec, pools)
    expected = cost_per_million_input_output(
        d.cost_per_hour, 4000.0, 1000.0, *token_capacity(views, d.replicas)
    )
    assert (d.cost_per_million_input_tokens, d.cost_per_million_output_tokens) == expected
    assert 0 < d.cost_per_million_input_tokens < d.cost_per_million_output_tokens
    plain = decide(dep.spec, pools, Observations(obs.times, obs.request_rate, obs.latency), {}, 0.0)
    assert math.isnan(plain.cost_per_million_input_tokens)


def test_plan_json_has_input_and_output_token_costs(capsys):
    args = ["plan", "-f", DEP, "-p", POOLS, "--rate", "4", "--json"]
    assert main([*args, "--input-tokens", "1000"]) == 0
    data = json.loads(capsys.readouterr().out)
    tokens_per_hour = 4 * 3600 / 1e6  # 1M tokens per hour per token per request
    spent = (
        data["cost_per_million_input_tokens"] * 1000 * tokens_per_hour
        + data["cost_per_million_output_tokens"] * 250 * tokens_per_hour  # meanOutputTokens
    )
    assert spent == pytest.approx(data["cost_per_hour"], rel=1e-5)
    assert main(args) == 0  # no input tokens given: no split
    data = json.loads(capsys.readouterr().out)
    assert data["cost_per_million_input_tokens"] is None
    assert data["cost_per_million_output_tokens"] is None


def test_plan_table_has_a_tokens_line(capsys):
    args = ["plan", "-f", DEP, "-p", POOLS, "--rate", "4"]
    assert main([*args, "--input-tokens", "1000"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("tokens"))
    assert line.startswith("tokens     $") and "per 1M input, $" in line
    assert main(args) == 0
    assert "tokens     no token costs (give --input-tokens N" in capsys.readouterr().out
