"""`costscaler simulate` end to end on the examples and a generated trace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from costscaler.cli import main

ROOT = Path(__file__).resolve().parents[3]
DEPLOYMENT = ROOT / "examples" / "deployments" / "llama-3-1-8b-vllm.yaml"
POOLS = ROOT / "examples" / "pools"
KEYS = {"policy", "total_cost", "cost_per_1k_requests", "slo_attainment", "requests"}
KEYS |= {"idle_accelerator_hours", "scale_events", "cost_per_million_tokens", "p99_latency_s"}


@pytest.fixture
def trace_file(tmp_path):
    rng = np.random.default_rng(7)
    rates = np.concatenate([np.full(300, 8.0), np.full(300, 30.0), np.full(300, 12.0)])
    times = np.sort(np.concatenate([t + rng.random(rng.poisson(r)) for t, r in enumerate(rates)]))
    body = "".join(f"{t:.4f},100,{rng.integers(10, 400)}\n" for t in times)
    path = tmp_path / "trace.csv"
    path.write_text("timestamp_s,input_tokens,output_tokens\n" + body)
    return path


def run_json(capsys, *args: str) -> list[dict]:
    assert main(["simulate", "-f", str(DEPLOYMENT), "-p", str(POOLS), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_policy_reports_and_no_one_beats_its_oracle(capsys, trace_file, tmp_path):
    png = tmp_path / "plot.png"
    # The oracle bounds the fluid queue's replays (under batching it is a reference only).
    args = ("--trace", str(trace_file), "--seed", "3", "--plot", str(png), "--serving", "fluid")
    rows = run_json(capsys, *args)
    by = {r["policy"]: r for r in rows}
    assert set(by) == {"costscaler", "costscaler-ondemand", "costscaler-single", "hpa", "keda"} | {
        "kpa",
        "static",
        "hpa-karpenter-spot",
        "keda-karpenter-spot",
        "oracle",
        "oracle-single",
    }
    assert all(KEYS <= set(r) for r in rows)
    assert by["oracle"]["slo_attainment"] == by["costscaler"]["slo_attainment"]
    assert by["oracle"]["total_cost"] <= by["costscaler"]["total_cost"]
    assert by["oracle-single"]["total_cost"] <= by["costscaler-single"]["total_cost"]
    assert png.stat().st_size > 10_000


def test_deterministic_for_a_seed(capsys, trace_file):
    args = ("--trace", str(trace_file), "--policy", "costscaler", "--policy", "hpa")
    assert run_json(capsys, *args, "--seed", "1") == run_json(capsys, *args, "--seed", "1")


def test_spot_trace_flag_names_spot_pools(capsys, trace_file, tmp_path):
    spot = tmp_path / "zone.csv"
    spot.write_text("time_s,available,target\n0,4,4\n200,1,4\n400,0,4\n700,4,4\n")
    rows = run_json(
        capsys,
        "--trace",
        str(trace_file),
        "--policy",
        "costscaler",
        "--spot-trace",
        f"g5-xlarge-a10g-spot={spot}",
    )
    assert rows[0]["requests"] > 0
    code = main(
        [
            "simulate",
            "-f",
            str(DEPLOYMENT),
            "-p",
            str(POOLS),
            "--trace",
            str(trace_file),
            "--spot-trace",
            f"g5-xlarge-a10g-ondemand={spot}",
        ]
    )
    assert code == 2
    assert "spot pools" in capsys.readouterr().err


def test_malformed_trace_is_a_one_line_error(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_s,input_tokens,output_tokens\n0.5,1,oops\n")
    code = main(["simulate", "-f", str(DEPLOYMENT), "-p", str(POOLS), "--trace", str(bad)])
    assert code == 2
    assert f"{bad}:2:3:" in capsys.readouterr().err


def test_scenario_flags_change_the_replay(capsys, trace_file):
    args = ("--trace", str(trace_file), "--policy", "costscaler", "--seed", "2")
    base = run_json(capsys, *args)[0]
    cold = run_json(capsys, *args, "--cold-start")[0]
    assert cold["slo_attainment"] < base["slo_attainment"]  # the first replicas warm up
    bursty = run_json(capsys, *args, "--spot-burst-share", "1", "--spot-burst-size", "1")[0]
    assert bursty["requests"] == base["requests"]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--spot-burst-share", "1.5", "--spot-burst-share"),
        ("--spot-burst-size", "0", "--spot-burst-size"),
        ("--rate-window", "0.5", "--rate-window"),
    ],
)
def test_scenario_flags_are_checked(capsys, trace_file, flag, value, message):
    cmd = ["simulate", "-f", str(DEPLOYMENT), "-p", str(POOLS), "--trace", str(trace_file)]
    step = ["--step", "1"] if flag == "--rate-window" else []
    assert main([*cmd, *step, flag, value]) == 2
    assert message in capsys.readouterr().err


def test_seeds_report_the_mean_and_spread_and_name_the_setup(capsys, trace_file):
    args = ("--trace", str(trace_file), "--policy", "costscaler", "--policy", "hpa")
    rows = run_json(capsys, *args, "--seed", "4", "--seeds", "3", "--burn-in", "120")
    singles = [run_json(capsys, *args, "--seed", str(s), "--burn-in", "120") for s in (4, 5, 6)]
    for i, row in enumerate(rows):
        costs = [run[i]["total_cost"] for run in singles]
        assert row["total_cost"] == pytest.approx(sum(costs) / 3, rel=1e-12)
        assert row["min"]["total_cost"] == min(costs) and row["max"]["total_cost"] == max(costs)
        assert row["seeds"] == [4, 5, 6] and row["burn_in_s"] == 120
        assert row["start"]["pool"] == "g5-xlarge-a10g-ondemand" and row["start"]["warm"]
        assert "scenario" in row
    table = run_table(capsys, *args, "--seeds", "2")
    assert "seeds 0-1" in table and " (" in table  # mean (min-max)


def test_burn_in_leaves_the_first_seconds_out_of_every_figure(capsys, trace_file):
    args = ("--trace", str(trace_file), "--policy", "static", "--policy", "oracle")
    args += ("--serving", "fluid")  # where the oracle is a bound
    full = run_json(capsys, *args)
    cut = run_json(capsys, *args, "--burn-in", "300")
    assert cut[0]["requests"] < full[0]["requests"]
    # static holds one count from step 0: its cost counts 600 of the 900 s
    assert cut[0]["replica_cost"] == pytest.approx(full[0]["replica_cost"] * 600 / 900, rel=1e-9)
    assert cut[1]["requests"] == cut[0]["requests"]  # the oracle bounds the same stretch
    assert cut[1]["total_cost"] <= cut[0]["total_cost"]


def test_every_policy_starts_from_the_same_allocation(lineup, trace_file):
    from costscaler.sim.traces import load_trace

    trace = load_trace(trace_file)
    start = lineup.start(trace)
    runs = lineup.run(["costscaler", "hpa", "keda", "kpa", "static"], trace, keep_timeline=True)
    for out in runs:
        assert out.timeline is not None
        assert tuple(out.timeline.ready[:, 0]) == start.replicas, out.policy


def run_table(capsys, *args: str) -> str:
    assert main(["simulate", "-f", str(DEPLOYMENT), "-p", str(POOLS), *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--seeds", "0", "--seeds"),
        ("--burn-in", "900", "--burn-in"),
        ("--burn-in", "-1", "--burn-in"),
    ],
)
def test_seed_and_burn_in_flags_are_checked(capsys, trace_file, flag, value, message):
    cmd = ["simulate", "-f", str(DEPLOYMENT), "-p", str(POOLS), "--trace", str(trace_file)]
    assert main([*cmd, flag, value]) == 2
    assert message in capsys.readouterr().err


def test_batching_serves_each_request_with_its_tokens(capsys, trace_file):
    args = ("--trace", str(trace_file), "--policy", "static", "--policy", "costscaler")
    rows = run_json(capsys, *args, "--serving", "batching", "--seed", "2")
    again = run_json(capsys, *args, "--seed", "2")  # batching is the default
    assert rows == again  # the same seed gives the same output
    for row in rows:
        assert row["scenario"]["serving"] == "batching"
        assert 0 < row["ttft_p50_s"] <= row["ttft_p95_s"] <= row["ttft_p99_s"]
        assert 0 < row["itl_p50_s"] <= row["itl_p99_s"] < row["p50_latency_s"]
        assert row["p50_latency_s"] <= row["p95_latency_s"] <= row["p99_latency_s"]
    fluid = run_json(capsys, *args, "--serving", "fluid")
    assert fluid[0]["ttft_p50_s"] is None  # the fluid queue has no tokens to time
    assert fluid[0]["scenario"]["serving"] == "fluid"
    robin = run_json(capsys, *args, "--serving", "batching", "--router", "round-robin")
    assert robin[0]["requests"] == rows[0]["requests"]


def test_scenario_flags_and_file_are_named_in_the_output(capsys, trace_file, tmp_path):
    spec = tmp_path / "bad-day.yaml"
    spec.write_text(
        "name: bad day\ncapacityError: 0.8\ncoldStartTail: 2\n"
        "stockouts: [{startSeconds: 100, durationSeconds: 300}]\n"
    )
    args = ("--trace", str(trace_file), "--policy", "static", "--policy", "hpa")
    base = run_json(capsys, *args)
    rows = run_json(capsys, *args, "--scenario", str(spec), "--metrics-outage", "200:120:stale")
    scenario = rows[0]["scenario"]
    assert scenario["name"] == "bad day" and scenario["capacity_error"] == 0.8
    assert scenario["stockouts"] == [[100.0, 300.0]]
    assert scenario["outages"] == [{"start_s": 200.0, "duration_s": 120.0, "kind": "stale"}]
    assert rows[0]["slo_attainment"] < base[0]["slo_attainment"]  # static, 20 % short
    flags = run_json(capsys, *args, "--capacity-error", "0.8")
    assert flags[0]["scenario"]["name"] == "flags"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--capacity-error", "0", "capacity_error"),
        ("--stockout", "100", "--stockout"),
        ("--metrics-outage", "1:2:maybe", "kind"),
    ],
)
def test_scenario_values_are_checked(capsys, trace_file, flag, value, message):
    cmd = ["simulate", "-f", str(DEPLOYMENT), "-p", str(POOLS), "--trace", str(trace_file)]
    assert main([*cmd, flag, value]) == 2
    assert message in capsys.readouterr().err


def test_an_accelerator_without_serving_figures_names_the_fix(capsys, trace_file, tmp_path):
    # The same example on an accelerator sim/accelerators.json does not describe.
    for src in (DEPLOYMENT, *POOLS.glob("*.yaml")):
        text = src.read_text().replace("A100-40GB", "H200-141GB")
        (tmp_path / src.name).write_text(text)
    deployment = tmp_path / DEPLOYMENT.name
    cmd = ["simulate", "-f", str(deployment), "-p", str(tmp_path), "--trace", str(trace_file)]
    cmd += ["--policy", "hpa"]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "H200-141GB" in err and "sim/accelerators.json" in err and "--serving fluid" in err
    assert main([*cmd, "--serving", "fluid"]) == 0
