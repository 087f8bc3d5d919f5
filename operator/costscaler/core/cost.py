"""The cost model: effective $/h of a node and of a replica, fixed items, and unit costs.

All money here is float dollars; the API's decimal strings are converted at the edge
(`costscaler.api.money.to_float`). A month is 730 hours (8760 / 12), the cloud billing convention.
"""

from __future__ import annotations

import math

HOURS_PER_MONTH = 730.0


def ownership_hourly(
    purchase_price: float,
    amortization_months: int,
    power_watts: float,
    pue: float,
    electricity_per_kwh: float,
    operations_per_month: float,
    operations_per_node_hour: float = 0.0,
) -> float:
    """Total cost of ownership of one owned node per hour ($/h).

    $/h = purchase_price [$] / (amortization_months x 730 [h])
        + power_watts [W] / 1000 x pue x electricity_per_kwh [$/kWh]
        + operations_per_month [$] / 730 [h]
        + operations_per_node_hour [$/h]

    This is the allocated cost a chargeback view charges for a node in use. Decisions pay
    only part of it: capex and monthly operations are paid whether the node serves or not
    (`ownership_marginal_hourly` is what a decision pays).
    """
    capex = purchase_price / (amortization_months * HOURS_PER_MONTH)
    energy = power_watts / 1000.0 * pue * electricity_per_kwh
    return capex + energy + operations_per_month / HOURS_PER_MONTH + operations_per_node_hour


def ownership_marginal_hourly(
    power_watts: float, pue: float, electricity_per_kwh: float, operations_per_node_hour: float
) -> float:
    """What serving on one owned or reserved node adds per hour ($/h): the sunk capex and
    monthly operations left out.

    $/h = power_watts [W] / 1000 x pue x electricity_per_kwh [$/kWh] + operations_per_node_hour
    """
    return power_watts / 1000.0 * pue * electricity_per_kwh + operations_per_node_hour


def replica_hourly(node_hourly: float, accelerators_per_replica: int, count_per_node: int) -> float:
    """$/h of one replica on a full node: node $/h / floor(count_per_node /
    accelerators_per_replica), the replicas one node holds.

    A node bills whole, so accelerators no replica can use (2 of 8 with 3 per replica) are
    paid by the replicas that fit; a part-full node's empty slots are paid by the plan
    (`core.nodes`)."""
    return node_hourly / (count_per_node // accelerators_per_replica)


def fixed_hourly(fixed_monthly: float, storage_monthly: float) -> float:
    """Fixed monthly items (licences, on-call, monitoring) and storage as $/h (/ 730 h)."""
    return (fixed_monthly + storage_monthly) / HOURS_PER_MONTH


def egress_hourly(rate_rps: float, gb_per_thousand_requests: float, price_per_gb: float) -> float:
    """Egress $/h at a request rate: req/s x 3600 s/h / 1000 x GB per 1k requests x $/GB."""
    return max(rate_rps, 0.0) * 3.6 * gb_per_thousand_requests * price_per_gb


def cost_per_thousand_requests(cost_per_hour: float, rate_rps: float) -> float:
    """$ per 1,000 requests: ($/h) / (req/s x 3.6); NaN when there is no traffic."""
    if not rate_rps > 0:
        return math.nan
    return cost_per_hour / (rate_rps * 3.6)


def cost_per_million_tokens(cost_per_hour: float, token_rate: float) -> float:
    """$ per 1M output tokens: ($/h) / (tokens/s x 3600) x 1e6; NaN without tokens."""
    if not token_rate > 0:
        return math.nan
    return cost_per_hour / (token_rate * 3600.0) * 1e6


def cost_per_million_input_output(
    cost_per_hour: float,
    prompt_rate: float,
    generation_rate: float,
    prefill_capacity: float = math.nan,
    decode_capacity: float = math.nan,
) -> tuple[float, float]:
    """($ per 1M input tokens, $ per 1M output tokens) of a deployment's allocated cost.

    OpenCost's inference cost view (llm-d "Track Inference Cost": allocation cost joined with
    vLLM's prompt and generation token counters, per phase): the deployment's cost per hour,
    idle capacity included, divided over the tokens it served, after splitting it between the
    prefill (input) and decode (output) phases. The split is each phase's share of busy GPU
    time when the serving replicas have token profiles:

        share_in = (P / Cp) / (P / Cp + G / Cd)

    with P and G the input and output tokens/s and Cp, Cd the replicas' summed prefill and
    decode tokens/s; without profiles (a NaN capacity) every token costs the same,
    share_in = P / (P + G). Then $/1M input = cost_per_hour x share_in / (P x 3600) x 1e6 and
    $/1M output = cost_per_hour x (1 - share_in) / (G x 3600) x 1e6. NaN for both unless
    both rates are positive.
    """
    if not (prompt_rate > 0 and generation_rate > 0 and cost_per_hour >= 0):
        return math.nan, math.nan
    if prefill_capacity > 0 and decode_capacity > 0:
        busy_in, busy_out = prompt_rate / prefill_capacity, generation_rate / decode_capacity
    else:
        busy_in, busy_out = prompt_rate, generation_rate
    share_in = busy_in / (busy_in + busy_out)
    per_input = cost_per_hour * share_in / (prompt_rate * 3600.0) * 1e6
    per_output = cost_per_hour * (1.0 - share_in) / (generation_rate * 3600.0) * 1e6
    return per_input, per_output


def idle_accelerator_hours(
    provisioned_accelerators: float, needed_accelerators: float, seconds: float
) -> float:
    """Accelerator-hours paid but not needed over `seconds`: max(0, provisioned - needed) x h.

    `needed_accelerators` is demand / per-replica capacity x accelerators per replica,
    fractional: a replica at half load leaves half its accelerator idle.
    """
    return max(provisioned_accelerators - needed_accelerators, 0.0) * seconds / 3600.0
