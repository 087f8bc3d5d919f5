"""`costscaler plan`: the table, the JSON contract and clear errors for bad files or flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from costscaler.cli import main

ROOT = Path(__file__).resolve().parents[3]
DEP = str(ROOT / "examples" / "deployments" / "llama-3-1-8b-vllm.yaml")
POOLS = str(ROOT / "examples" / "pools")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_contract_fields(capsys):
    code, out, _ = _run(capsys, "-f", DEP, "-p", POOLS, "--rate", "12", "--json")
    assert code == 0
    data = json.loads(out)
    for key in ("replicas", "cost_per_hour", "slo_risk", "reason", "message", "alternatives"):
        assert key in data
    # No example pool has a nodePool: nothing launches nodes, so no warm spares.
    assert data["warm_nodes"] == {}
    # Issue 13: the plan's expected share of requests within the threshold, and the rest.
    assert data["expected_attainment"] == pytest.approx(1.0 - data["violating_share"])
    assert data["violating_share"] == data["slo_risk"]
    # The example pools are few enough for the search to close: the plan is proven.
    assert data["optimum_proven"] is True and data["optimum_gap"] == 0.0
    assert sum(data["replicas"].values()) >= 5  # 12 req/s at <= 2.6 req/s per replica
    assert data["reason"] == "CostOptimal"
    names = {a["name"] for a in data["alternatives"]}
    assert {"chosen", "cheapest-on-demand", "max-spot", "current"} <= names
    for alt in data["alternatives"]:
        assert set(alt) == {
            "name",
            "replicas",
            "cost_per_hour",
            "marginal_cost_per_hour",
            "slo_risk",
        }


def test_table_shows_pools_cost_risk_and_alternatives(capsys):
    code, out, _ = _run(
        capsys, "-f", DEP, "-p", POOLS, "--rate", "5", "--current", "g6-xlarge-l4-ondemand=2"
    )
    assert code == 0
    for text in (
        "POOL",
        "g5-xlarge-a10g-spot",
        "spot share",
        "warm nodes",
        "attainment",
        "of requests over the latency threshold",
        "ALTERNATIVE",
        "max-spot",
    ):
        assert text in out


def test_zero_load_plans_the_minimum(capsys):
    code, out, _ = _run(capsys, "-f", DEP, "-p", POOLS, "--rate", "0", "--json")
    assert code == 0
    assert sum(json.loads(out)["replicas"].values()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["-f", "missing.yaml", "-p", POOLS, "--rate", "1"], "no such file", id="no-file"
        ),
        pytest.param(
            ["-f", DEP, "-p", str(ROOT / "examples" / "pools" / "onprem-h100.yaml"), "--rate", "1"],
            "not found among the CapacityPools",
            id="pools-missing",
        ),
        pytest.param(
            ["-f", str(ROOT / "examples" / "deployments"), "-p", POOLS, "--rate", "1"],
            "pick one with --name",
            id="several-deployments",
        ),
        pytest.param(
            ["-f", DEP, "-p", POOLS, "--rate", "1", "--current", "nope=1"],
            "not an eligible pool",
            id="unknown-current-pool",
        ),
        pytest.param(
            ["-f", DEP, "-p", POOLS, "--rate", "1", "--current", "g6-xlarge-l4-spot=two"],
            "expected POOL=N",
            id="bad-current-count",
        ),
        pytest.param(
            ["-f", DEP, "-p", POOLS, "--rate", "1", "--on-conflict", "PreferBudget"],
            "--on-conflict needs --budget-rate",
            id="on-conflict-without-budget",
        ),
    ],
)
def test_user_errors_are_one_line(capsys, argv: list[str], message: str):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_slo_window_counts_set_the_target_and_the_budget_left(capsys):
    # Issue 13: no counts, the SLO's target and a null budget; a spent budget tightens it.
    base = ["-f", DEP, "-p", POOLS, "--rate", "12", "--json"]
    plain = json.loads(_run(capsys, *base)[1])
    assert plain["error_budget_left"] is None and plain["burn_rate"] is None
    # A full week at 12 req/s, 3 % bad against 1 % allowed.
    spent = ["--slo-good", str(0.97 * 12 * 604800), "--slo-total", str(12 * 604800)]
    burnt = json.loads(_run(capsys, *base, *spent)[1])
    assert burnt["error_budget_left"] == pytest.approx(-2.0)
    assert burnt["burn_rate"] == pytest.approx(3.0)
    assert burnt["attainment_target"] > plain["attainment_target"]
    assert sum(burnt["replicas"].values()) >= sum(plain["replicas"].values())
    table = _run(capsys, *base[:-1], *spent)[1]
    assert "error budget left -200.0%, burn rate 3.00" in table


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(["--slo-good", "5"], "go together", id="good-alone"),
        pytest.param(["--slo-good", "5", "--slo-total", "4"], "more than", id="good-over-total"),
    ],
)
def test_bad_slo_counts_are_one_line_errors(capsys, flags: list[str], message: str):
    code, _, err = _run(capsys, "-f", DEP, "-p", POOLS, "--rate", "1", *flags)
    assert code == 2 and message in err


@pytest.mark.parametrize("rate", ["-1", "nan", "inf", "fast"])
def test_bad_rate_is_rejected_by_the_parser(capsys, rate: str):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-f", DEP, "-p", POOLS, "--rate", rate])
    assert exc.value.code == 2
    assert "--rate" in capsys.readouterr().err


def test_deployment_picked_by_name(capsys):
    folder = str(ROOT / "examples" / "deployments")
    code, out, _ = _run(
        capsys, "-f", folder, "-p", POOLS, "--rate", "100", "--name", "triton-resnet", "--json"
    )
    assert code == 0
    assert set(json.loads(out)["replicas"]) == {"g6-xlarge-l4-spot", "g6-xlarge-l4-ondemand"}


A100_MOVE = ["--rate", "10", "--current", "p4d-24xlarge-a100-ondemand=6", "--budget-rate", "7"]


def test_prefer_budget_holds_a_move_within_the_budget_rate(capsys):
    """Issue #14: 6 A100 replicas at 10 req/s move to cheaper pools with $7/h allowed. The
    engine kept the 5 idle A100s alive beside the new plan: $26.90/h, reason KeepAlive."""
    argv = ["-f", DEP, "-p", POOLS, *A100_MOVE, "--on-conflict", "PreferBudget", "--json"]
    code, out, _ = _run(capsys, *argv)
    data = json.loads(out)
    assert code == 0
    assert data["cost_per_hour"] <= 7.0 + 1e-6, data["message"]
    assert data["reason"] == "BudgetLimited" and data["budget_limited"]
    assert data["budget"] == {"allowed_per_hour": 7.0, "on_conflict": "PreferBudget"}


def test_prefer_slo_says_how_far_over_the_budget_rate_it_goes(capsys):
    code, out, _ = _run(capsys, "-f", DEP, "-p", POOLS, *A100_MOVE, "--on-conflict", "PreferSLO")
    assert code == 0
    assert "BudgetExceededForSLO" in out and "/h over the budget's $7.00/h" in out, out
    assert "PreferSLO: $" in out  # the budget line of the table


def test_the_default_on_conflict_is_prefer_slo(capsys):
    code, out, _ = _run(capsys, "-f", DEP, "-p", POOLS, "--rate", "10", "--budget-rate", "1e6")
    assert code == 0
    assert "$1000000.0000/h allowed, PreferSLO: within" in out, out


@pytest.mark.parametrize("rate", ["-1", "nan", "inf", "cheap"])
def test_bad_budget_rate_is_rejected_by_the_parser(capsys, rate: str):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-f", DEP, "-p", POOLS, "--rate", "1", "--budget-rate", rate])
    assert exc.value.code == 2
    assert "--budget-rate" in capsys.readouterr().err
