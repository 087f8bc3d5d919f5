"""The policies by name, built for one deployment, and a run of several on one trace.

HPA, KEDA, KPA, static and `costscaler-single` run on the cheapest on-demand pool (their
real counterparts cannot mix pools); `hpa-karpenter-spot` and `keda-karpenter-spot` run the
same HPA and KEDA over the cheapest on-demand pool that has a spot twin (the instance family
a platform team that wants spot picks; the same pool when the cheapest has one) and that
twin, as a node autoscaler places them (`sim.karpenter`: an on-demand base, a fixed spot
share); `costscaler` gets every eligible pool, and
`costscaler-ondemand` every eligible pool but the spot ones (the value of spot, apart).
`oracle` is the lower bound on all pools at the attainment `costscaler` reached (or the SLO
target when it did not run); `oracle-single` the bound on the cheapest on-demand pool at the
attainment of the first single-pool policy run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from costscaler.api import CapacityPool, InferenceDeployment
from costscaler.errors import UserError
from costscaler.sim.batching import Router, hardware
from costscaler.sim.budget import SimBudget
from costscaler.sim.cluster import SpotBursts, SpotReplay
from costscaler.sim.engine_policy import CostScaler
from costscaler.sim.hpa import HPA, KEDA, RATE_WINDOW_S
from costscaler.sim.karpenter import Placed, spot_partner
from costscaler.sim.knative import KPA
from costscaler.sim.oracle import SpotLimits, idle_accelerator_hours, lower_bound
from costscaler.sim.policy import Policy
from costscaler.sim.pools import (
    PoolModel,
    cheapest_on_demand,
    egress_cost_per_request,
    fixed_cost_per_hour,
    pool_models,
)
from costscaler.sim.run import Costs, Outcome, Start, burn_in_steps, simulate
from costscaler.sim.scenario import MANIFEST, Scenario
from costscaler.sim.serving import ServingSetup, TokenDraw
from costscaler.sim.static import Static, peak_rate
from costscaler.sim.traces import Trace, load_accelerators

POLICIES = (
    "costscaler",
    "costscaler-ondemand",
    "costscaler-single",
    "hpa",
    "keda",
    "kpa",
    "static",
    "hpa-karpenter-spot",
    "keda-karpenter-spot",
)
ORACLES = ("oracle", "oracle-single")
SERVING = ("fluid", "batching")
SINGLE = ("costscaler-single", "hpa", "keda", "kpa", "static")


@dataclass(frozen=True)
class Settings:
    """How a replay is set up, the same for every policy of a run.

    Baseline targets: utilisation of rated capacity (HPA, KPA) and KEDA's per-replica
    threshold as a share of rated capacity. `rate_window_s`: the range of the request-rate
    query costscaler, HPA and KEDA read (bursts shorter than it are averaged away; KPA keeps
    its own 6 s / 60 s windows). `bursts`: correlated spot losses. Every policy starts from
    the same allocation (`Lineup.start`): `start_replicas` on the cheapest on-demand pool (None:
    enough rated replicas for the trace's first minute, within the deployment's bounds),
    serving at once when `warm_start`, else paying their cold start at t=0. `burn_in_s`:
    seconds left out of every total (the oracle bounds the rest of the trace). `serving`:
    `fluid` (one queue at the profiles' declared capacity, `sim.service`) or `batching`
    (requests one by one, continuous batching on each replica's hardware, `sim.batching`,
    spread by `router`). `scenario`: how the world differs from the manifest, for every
    policy and the oracle alike (`sim.scenario`).
    """

    hpa_utilisation: float = 0.7
    keda_utilisation: float = 0.7
    kpa_utilisation: float = 0.7
    budget: SimBudget | None = None  # enforced on the costscaler policies
    rate_window_s: float = RATE_WINDOW_S
    bursts: SpotBursts = field(default_factory=SpotBursts)
    warm_start: bool = True
    start_replicas: int | None = None
    burn_in_s: float = 0.0
    serving: str = "fluid"
    router: Router = "least"
    scenario: Scenario = MANIFEST


@dataclass
class Lineup:
    """One deployment's pools and policies, ready to replay traces."""

    deployment: InferenceDeployment
    pools: list[CapacityPool]
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        self.models: list[PoolModel] = pool_models(self.deployment, self.pools)
        self.single = self.models.index(cheapest_on_demand(self.models))
        paired = [
            i
            for i, m in enumerate(self.models)
            if not m.spot and spot_partner(self.models, i) is not None
        ]
        # The Karpenter baselines' on-demand pool: None when no on-demand pool has a twin.
        self.family: int | None = (
            min(paired, key=lambda i: self.models[i].cost_per_capacity) if paired else None
        )
        spec = self.deployment.spec
        self.costs = Costs(
            threshold_s=spec.slo.latency.threshold_seconds,
            fixed_per_hour=fixed_cost_per_hour(self.deployment),
            egress_per_request=egress_cost_per_request(self.deployment),
            mean_output_tokens=spec.workload.mean_output_tokens,
        )
        if self.settings.serving not in SERVING:
            raise ValueError(f"serving must be one of {', '.join(SERVING)}")
        self.serving: ServingSetup | None = None
        if self.settings.serving == "batching":
            data = load_accelerators()
            try:
                hw = tuple(
                    hardware(data, m.accelerator, m.accelerators_per_replica) for m in self.models
                )
            except ValueError as exc:
                raise UserError(
                    f"--serving batching: {exc}, or replay with --serving fluid"
                ) from exc
            draw = TokenDraw(mean_output=spec.workload.mean_output_tokens or 250.0)
            slo = spec.slo
            ttft = slo.ttft.threshold_seconds if slo.ttft else None
            itl = slo.itl.threshold_seconds if slo.itl else None
            self.serving = ServingSetup(hw, self.settings.router, draw, ttft, itl)

    def home(self, name: str) -> int:
        """The on-demand pool policy `name` starts on: the Karpenter baselines' own
        (`family`), the cheapest on-demand pool for every other."""
        if name.endswith("karpenter-spot") and self.family is not None:
            return self.family
        return self.single

    def start(self, trace: Trace, pool: int | None = None) -> Start:
        """The allocation a policy starts from: replicas on one on-demand pool (default the
        cheapest; `home(name)` for a policy's own).

        `Settings.start_replicas`, or by default the rated replicas the trace's first minute
        needs on that pool, clamped to the deployment's bounds: the same rated capacity for
        every policy, so none starts with more warm capacity than another.
        """
        spec = self.deployment.spec
        at = self.single if pool is None else pool
        n = self.settings.start_replicas
        if n is None:
            first = trace.arrivals[: max(1, round(60 / trace.dt))]
            rate = float(first.sum()) / (first.size * trace.dt)
            n = math.ceil(rate / self.models[at].capacity_rps - 1e-9)
        n = max(spec.replicas.min, min(spec.replicas.max, n))
        cap = self.models[at].max_replicas
        n = n if cap is None else min(n, cap)
        replicas = tuple(n if i == at else 0 for i in range(len(self.models)))
        return Start(replicas, self.settings.warm_start)

    def policy(self, name: str, trace: Trace, pool: int | None = None) -> Policy:
        """A fresh policy by name (policies keep state, so one per run); `pool`: the one
        pool of a single-pool baseline (default the cheapest on-demand)."""
        spec = self.deployment.spec
        single = self.single if pool is None else pool
        lo, hi = spec.replicas.min, spec.replicas.max
        rated = self.models[single].capacity_rps
        if name.startswith("costscaler"):
            names = {
                "costscaler": [m.name for m in self.models],
                "costscaler-ondemand": [m.name for m in self.models if not m.spot],
                "costscaler-single": [self.models[single].name],
            }[name]
            budget, window = self.settings.budget, self.settings.rate_window_s
            return CostScaler(spec, self.pools, names, name, budget=budget, rate_window_s=window)
        if name == "hpa":
            hpa = self.settings.hpa_utilisation
            return HPA(single, hpa, lo, hi, rate_window_s=self.settings.rate_window_s)
        if name == "keda":
            threshold = self.settings.keda_utilisation * rated
            return KEDA(single, threshold, lo, hi, rate_window_s=self.settings.rate_window_s)
        if name in ("hpa-karpenter-spot", "keda-karpenter-spot"):
            family = self.family
            partner = None if family is None else spot_partner(self.models, family)
            if family is None or partner is None:
                raise UserError(
                    f"{name}: no on-demand pool in spec.pools has a spot pool with its "
                    "accelerator; add one to compare against HPA + Karpenter with spot"
                )
            inner = self.policy(name.split("-")[0], trace, family)
            assert isinstance(inner, (HPA, KEDA))
            inner = replace(inner, pool=0)  # the one pool of the summed view
            limits = spec.spot
            base = limits.min_on_demand_replicas
            return Placed(inner, family, partner, base, limits.max_fraction, name=name)
        if name == "kpa":
            return KPA(single, self.settings.kpa_utilisation, lo, hi)
        if name == "static":
            return Static.for_peak(single, rated, peak_rate(trace.arrivals, trace.dt), lo)
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES + ORACLES)}")

    def run(
        self,
        names: list[str],
        trace: Trace,
        *,
        seed: int = 0,
        replays: dict[int, SpotReplay] | None = None,
        keep_timeline: bool = False,
    ) -> list[Outcome]:
        """Replay `trace` through each named policy, then the named oracles."""
        out = [
            simulate(
                trace,
                self.models,
                self.policy(n, trace),
                self.costs,
                start=self.start(trace, self.home(n)),
                seed=seed,
                replays=replays,
                bursts=self.settings.bursts,
                burn_in_s=self.settings.burn_in_s,
                serving=self.serving,
                scenario=self.settings.scenario,
                keep_timeline=keep_timeline,
            )
            for n in names
            if n not in ORACLES
        ]
        done = {o.policy: o for o in out}
        target = self.deployment.spec.slo.attainment
        for name in (n for n in names if n in ORACLES):
            if name == "oracle":
                ref = done.get("costscaler")
                out.append(
                    self.oracle(name, trace, self.models, ref.slo_attainment if ref else target)
                )
            else:
                ref = next((done[n] for n in SINGLE if n in done), None)
                pools = [self.models[self.single]]
                out.append(self.oracle(name, trace, pools, ref.slo_attainment if ref else target))
        return out

    def oracle(self, name: str, trace: Trace, pools: list[PoolModel], attainment: float) -> Outcome:
        """The oracle's bound as an outcome row (no latency or scale events: it is a bound).

        It bounds the trace after the burn-in: whatever a policy ran before, its schedule
        from then on satisfies the bound's constraints over that stretch. It sees the
        scenario's true capacity; its cold starts are the declared ones, the fastest a
        scenario draws, and it may use spot through stock-outs: both only lower the bound.
        """
        trace = trace.after(burn_in_steps(self.settings.burn_in_s, trace.dt, trace.steps))
        err = self.settings.scenario.capacity_error
        pools = [replace(p, capacity_rps=p.capacity_rps * err) for p in pools]
        limits = self.deployment.spec.spot
        spot = SpotLimits(limits.max_fraction, limits.min_on_demand_replicas)
        bound = lower_bound(
            trace.arrivals, trace.dt, pools, self.costs.threshold_s, attainment, spot=spot
        )
        requests = float(trace.arrivals.sum())
        hours = trace.steps * trace.dt / 3600
        total = bound.replica_cost + self.costs.fixed_per_hour * hours
        total += self.costs.egress_per_request * attainment * requests
        tokens = (
            float(trace.output_tokens.sum())
            if trace.output_tokens is not None
            else requests * (self.costs.mean_output_tokens or 0.0)
        )
        idle = idle_accelerator_hours(bound, pools, trace.dt)
        return Outcome(
            policy=name,
            total_cost=total,
            replica_cost=bound.replica_cost,
            cost_per_1k_requests=total / requests * 1000 if requests else None,
            cost_per_million_tokens=total / tokens * 1e6 if tokens else None,
            slo_attainment=attainment,
            requests=requests,
            idle_accelerator_hours=idle,
            scale_events=None,
            p99_latency_s=None,
            oracle_block_s=bound.block_steps * trace.dt,
        )
