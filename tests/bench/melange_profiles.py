"""Llama-2-7B profiles per GPU and request size built from the Mélange paper (issue 17).

Source: Griggs et al., "Mélange: Cost Efficient Large Language Model Serving by Exploiting GPU
Heterogeneity", arXiv 2404.14527 (v3). The paper publishes no per-bucket throughput table, so
the profiles are derived. What comes from the paper, and where:

- GPU types, on-demand prices ($/h), memory, memory bandwidth and FP16 TFLOPS: Table 1 (§6.1).
  The H100 price is the paper's normalised 7.516 $/h (RunPod's H100/A100-80G ratio times the
  major clouds' A100 price, §6.1).
- Model and engine: Llama-2-7B on vLLM 0.2.7, one GPU per replica (§4, §6.1).
- SLO: average time per output token (request latency / output tokens, §4.1) of 40 ms or
  120 ms (§6.1, "Datasets and SLOs").
- Workloads: Chatbot Arena (short), PubMed (long) and Mixed = 80 % Arena + 20 % PubMed
  requests (§6.1, App. A.1). Arena is skewed below 2,000 tokens (App. A.1); the mean output
  lengths read off Fig. 10's legend are about 196 (Arena) and 314 (PubMed) tokens.
- L4 and A10G serve only requests under 12,000 tokens (§6.2).
- Single-GPU-type allocations per rate, dataset and SLO: App. C, Tables 3-8 (`PAPER_COUNTS`).

Derived here (the paper does not state them):

- Buckets: 5 input x 3 output token ranges (`INPUTS`, `OUTPUTS`), coarser than the paper's
  10 x 6 (§6.1) because `workload.capacity[].buckets` holds at most 16 entries.
- The size histograms of the three workloads (`ARENA_*`, `PUBMED_*`; input and output
  independent within a dataset), chosen to match the paper's qualitative description and
  the Fig. 10 output means (193 and 314 tokens at the buckets' representative sizes).
- Each bucket's req/s on each GPU at the TPOT SLO, from a roofline model of vLLM (`capacity`):
  decode is memory-bound (weights plus the batch's KV cache read per step at 80 % of Table 1's
  bandwidth) or compute-bound (2 x 6.74 GFLOP per token at 50 % of the dense FP16 peak),
  prefill is compute-bound at 50 % of that peak, and prefill steps stall the decode batch
  (vLLM 0.2.7 has no chunked prefill). Table 1's L4 (242) and H100 (1979) FP16 figures are
  with 2:4 sparsity, which serving does not use, so the dense peaks (121 and 989) are used.
  The KV cache is what vLLM's default 90 % of memory leaves after 13.48 GB of weights and 1 GB
  of activations, at 0.5 MiB a token (32 layers x 4096 x K and V x 2 bytes).
- Calibration: a request of a bucket takes h + q / roofline seconds of a GPU (`calibration`).
  For A100 and H100, (q, h) solve App. C's single-type counts at 120 ms and 32 req/s for
  Arena and PubMed exactly (32 / (count - 0.5) req/s per GPU); the paper has no PubMed row
  for L4 and A10G, so there h = 0 and q fits Arena. q comes out at 2.2-2.6 on all four GPUs
  (vLLM 0.2.7 reached 38-45 % of the roofline), h at 0.018 s (A100) and 0.118 s (H100): the
  per-request overhead the paper blames for the large GPUs' low efficiency on short
  requests (§4.2). Mixed and every 40 ms row are not fitted: `validation()` compares the
  single-type counts these profiles give with App. C. The paper's Mixed rows are not what
  its own Arena and PubMed rows imply under Mélange's additive load (§5.4.2): 80 % x 8.5 / 32
  + 20 % x 105.5 / 32 GPU-seconds a request make 28 A100s at 32 req/s, where Table 5 has 20.

Run `python tests/bench/melange_profiles.py` to print the profiles and the validation, or
`--manifest` to print examples/melange/llama-2-7b-melange.yaml's capacity section.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

PARAMS = 6.74e9  # Llama-2-7B parameters
WEIGHT_BYTES = 2.0 * PARAMS  # FP16
KV_BYTES_PER_TOKEN = 2 * 32 * 4096 * 2  # K and V, 32 layers, 4096 wide, 2 bytes
BANDWIDTH_EFFICIENCY = 0.8  # share of peak memory bandwidth a decode step reaches
COMPUTE_EFFICIENCY = 0.5  # share of dense FP16 peak prefill (and a compute-bound step) reaches
MEMORY_UTILISATION = 0.9  # vLLM's default --gpu-memory-utilization
ACTIVATION_BYTES = 1e9  # vLLM's activation and workspace reserve, about
SMALL_GPU_MAX_TOKENS = 12_000  # L4 and A10G serve requests under this (paper §6.2)


@dataclass(frozen=True)
class Gpu:
    """One GPU type from the paper's Table 1 (price, memory, bandwidth) with its dense FP16
    peak (Table 1 lists L4 and H100 with 2:4 sparsity)."""

    name: str
    accelerator: str
    price: float
    memory_gib: float
    bandwidth_gbs: float
    dense_tflops: float

    @property
    def kv_tokens(self) -> float:
        """Tokens of KV cache vLLM keeps after the weights and activations."""
        free = MEMORY_UTILISATION * self.memory_gib * 2**30 - WEIGHT_BYTES - ACTIVATION_BYTES
        return free / KV_BYTES_PER_TOKEN


GPUS = (
    Gpu("L4", "L4", 0.7, 24, 300, 121),
    Gpu("A10G", "A10G", 1.01, 24, 600, 125),
    Gpu("A100", "A100-80GB", 3.67, 80, 1935, 312),
    Gpu("H100", "H100-80GB", 7.516, 80, 3350, 989),
)

# (name, min, max, representative) token ranges; representative sizes are about the
# geometric middle of each range.
INPUTS = (
    ("in256", 1, 256, 128),
    ("in1k", 257, 1024, 512),
    ("in4k", 1025, 4096, 2048),
    ("in8k", 4097, 8192, 6144),
    ("in16k", 8193, 16384, 12288),
)
OUTPUTS = (("out128", 1, 128, 64), ("out512", 129, 512, 256), ("out2k", 513, 2048, 1024))

ARENA_INPUT = (0.62, 0.28, 0.09, 0.01, 0.0)
ARENA_OUTPUT = (0.53, 0.42, 0.05)
PUBMED_INPUT = (0.0, 0.02, 0.35, 0.45, 0.18)
PUBMED_OUTPUT = (0.10, 0.80, 0.10)

SLOS = {"120ms": 0.120, "40ms": 0.040}
RATES = (1, 2, 4, 8, 16, 32)
# App. C, Tables 3-8: GPUs each single-type baseline needs at RATES (req/s), per dataset and
# SLO (L4-only and A10G-only only for Arena: the paper leaves them out of PubMed and Mixed).
PAPER_COUNTS = {
    ("arena", "120ms"): {
        "L4": (3, 5, 9, 17, 33, 65),
        "A10G": (2, 3, 6, 11, 20, 39),
        "A100": (1, 1, 2, 3, 6, 9),
        "H100": (1, 1, 1, 2, 4, 8),
    },
    ("pubmed", "120ms"): {"A100": (4, 7, 14, 27, 53, 106), "H100": (2, 4, 8, 14, 28, 55)},
    ("mixed", "120ms"): {"A100": (1, 2, 3, 5, 10, 20), "H100": (1, 1, 2, 3, 6, 12)},
    ("arena", "40ms"): {
        "L4": (5, 9, 17, 34, 68, 135),
        "A10G": (3, 5, 10, 16, 40, 80),
        "A100": (1, 1, 2, 3, 6, 9),
        "H100": (1, 1, 1, 3, 4, 7),
    },
    ("pubmed", "40ms"): {"A100": (4, 9, 17, 34, 67, 133), "H100": (2, 4, 7, 14, 28, 56)},
    ("mixed", "40ms"): {"A100": (1, 2, 3, 6, 12, 24), "H100": (1, 1, 2, 4, 7, 13)},
}
# App. C: Mélange's own saving against the best single type at RATES, per dataset and SLO,
# the least of each row's "Savings" column (%).
PAPER_SAVINGS = {
    ("arena", "120ms"): (15.35, 20.46, 27.89, 32.79, 28.56, 21.86),
    ("pubmed", "120ms"): (23.80, 15.41, 21.65, 20.98, 19.40, 18.87),
    ("mixed", "120ms"): (0.0, 40.46, 13.39, 24.22, 21.63, 21.21),
    ("arena", "40ms"): (20.46, 0.0, 26.70, 17.80, 22.48, 8.87),
    ("pubmed", "40ms"): (0.0, 12.79, 7.64, 3.82, 5.82, 7.64),
    ("mixed", "40ms"): (0.0, 26.70, 4.21, 15.59, 12.90, 15.13),
}


def bucket_names() -> list[str]:
    """The 15 bucket names, input-major."""
    return [f"{i[0]}-{o[0]}" for i in INPUTS for o in OUTPUTS]


def shares(workload: str) -> np.ndarray:
    """Share of requests per bucket (input-major) of `arena`, `pubmed` or `mixed` (80 % Arena
    and 20 % PubMed requests, the paper's definition)."""
    arena = np.outer(ARENA_INPUT, ARENA_OUTPUT).ravel()
    pubmed = np.outer(PUBMED_INPUT, PUBMED_OUTPUT).ravel()
    mix = {"arena": arena, "pubmed": pubmed, "mixed": 0.8 * arena + 0.2 * pubmed}[workload]
    return np.asarray(mix / mix.sum(), dtype=np.float64)


def roofline(gpu: Gpu, i: float, o: float, tpot_s: float) -> float:
    """Req/s one GPU serves of requests of `i` prompt and `o` output tokens with the average
    TPOT (latency / o) within `tpot_s`; 0 when no batch meets it.

    With batch n the decode step takes t(n) = max(weights + n (i + o/2) KV bytes over the
    effective bandwidth, 2 PARAMS n over the effective compute), a prompt p = 2 PARAMS i over
    the effective compute, and prefills stall decoding, so at c req/s (Little's law on the
    batch) c = 1 / (p + o t(n) / n) and TPOT = p / o + t(n) / (1 - c p). The largest c over
    the batches the KV cache holds whose TPOT meets the SLO."""
    flops = COMPUTE_EFFICIENCY * gpu.dense_tflops * 1e12
    bandwidth = BANDWIDTH_EFFICIENCY * gpu.bandwidth_gbs * 1e9
    n = np.arange(1, int(gpu.kv_tokens // (i + o / 2.0)) + 1, dtype=np.float64)
    if n.size == 0:
        return 0.0
    step = np.maximum(
        (WEIGHT_BYTES + n * (i + o / 2.0) * KV_BYTES_PER_TOKEN) / bandwidth,
        2.0 * PARAMS * n / flops,
    )
    prefill = 2.0 * PARAMS * i / flops
    c = 1.0 / (prefill + o * step / n)
    tpot = prefill / o + step / (1.0 - c * prefill)
    ok = tpot <= tpot_s
    return float(c[ok].max()) if ok.any() else 0.0


def servable(gpu: Gpu, i_max: int, o_max: int) -> bool:
    """Whether the GPU holds a request of this size: under 12,000 tokens on the 24 GB GPUs
    (paper §6.2), within the KV cache on all."""
    if gpu.memory_gib <= 24 and i_max + o_max >= SMALL_GPU_MAX_TOKENS:
        return False
    return i_max + o_max <= gpu.kv_tokens


def raw_rates(gpu: Gpu, tpot_s: float) -> np.ndarray:
    """The roofline's req/s per bucket (input-major), 0 where the GPU cannot serve it."""
    out = []
    for _, _, i_max, i in INPUTS:
        for _, _, o_max, o in OUTPUTS:
            out.append(roofline(gpu, i, o, tpot_s) if servable(gpu, i_max, o_max) else 0.0)
    return np.array(out)


def mix_rate(rates: np.ndarray, share: np.ndarray) -> float:
    """Req/s of the mix one GPU serves alone (inf-free: 0 when it cannot serve a size of it)."""
    need = share > 0
    if np.any(rates[need] <= 0):
        return 0.0
    return float(1.0 / np.sum(share[need] / rates[need]))


def paper_seconds(dataset: str, gpu: Gpu) -> float:
    """GPU-seconds per request of `dataset` at 120 ms that App. C implies for `gpu` alone:
    (count - 0.5) / 32 at 32 req/s, the middle of what that integer count allows."""
    count = PAPER_COUNTS[(dataset, "120ms")][gpu.name][-1]
    return (count - 0.5) / RATES[-1]


def calibration(gpu: Gpu) -> tuple[float, float]:
    """(q, h) of `gpu`: a request of a bucket takes h + q / roofline seconds of the GPU. For
    A100 and H100, the two solve App. C's single-type rows at 120 ms and 32 req/s for Arena
    and PubMed exactly (q scales the roofline, h is a per-request overhead); the paper has
    no PubMed row for L4 and A10G, so there h = 0 and q fits Arena."""
    raw = raw_rates(gpu, SLOS["120ms"])
    per = {
        d: 1.0 / mix_rate(raw, shares(d)) for d in ("arena", "pubmed") if mix_rate(raw, shares(d))
    }
    if ("pubmed", "120ms") in PAPER_COUNTS and gpu.name in PAPER_COUNTS[("pubmed", "120ms")]:
        a = np.array([[per["arena"], 1.0], [per["pubmed"], 1.0]])
        b = np.array([paper_seconds("arena", gpu), paper_seconds("pubmed", gpu)])
        q, h = np.linalg.solve(a, b)
        return float(q), float(h)
    return paper_seconds("arena", gpu) / per["arena"], 0.0


def profiles(slo: str) -> dict[str, np.ndarray]:
    """Req/s per bucket (input-major) per GPU name at the TPOT SLO `slo` ('120ms', '40ms'),
    rounded to 4 significant digits (what the manifest states)."""
    out = {}
    for gpu in GPUS:
        q, h = calibration(gpu)
        raw = raw_rates(gpu, SLOS[slo])
        rates = np.where(raw > 0, 1.0 / (h + q / np.where(raw > 0, raw, 1.0)), 0.0)
        out[gpu.name] = np.array([float(f"{r:.4g}") for r in rates])
    return out


def single_type_count(rates: np.ndarray, share: np.ndarray, rate: float) -> float:
    """GPUs of one type Mélange's single-type baseline needs: ceil(rate / mix req/s), inf when
    the type cannot serve the mix."""
    per = mix_rate(rates, share)
    return math.ceil(rate / per - 1e-9) if per > 0 else math.inf


def validation() -> list[tuple[str, str, str, int, float]]:
    """(dataset, SLO, GPU, paper's count, these profiles' count) at 32 req/s, for every
    single-type baseline in App. C."""
    rows = []
    for (dataset, slo), table in PAPER_COUNTS.items():
        prof = profiles(slo)
        for name, counts in table.items():
            ours = single_type_count(prof[name], shares(dataset), RATES[-1])
            rows.append((dataset, slo, name, counts[-1], ours))
    return rows


def manifest_capacity(slo: str) -> str:
    """The `workload.capacity` YAML of examples/melange/llama-2-7b-melange.yaml."""
    names = bucket_names()
    lines = []
    for gpu in GPUS:
        rates = profiles(slo)[gpu.name]
        served = [(n, r) for n, r in zip(names, rates, strict=True) if r > 0]
        overall = mix_rate(rates, shares("mixed")) or mix_rate(rates, shares("arena"))
        lines.append(f"      - accelerator: {gpu.accelerator}")
        lines.append(f"        requestsPerSecond: {overall:.4g}")
        lines.append("        buckets:")
        for n, r in served:
            lines.append(f"          - {{size: {n}, requestsPerSecond: {r:g}}}")
    return "\n".join(lines)


def main() -> None:
    """Print the profiles and the validation against App. C (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", choices=sorted(SLOS), help="print the capacity YAML")
    args = parser.parse_args()
    if args.manifest:
        print(manifest_capacity(args.manifest))
        return
    for gpu in GPUS:
        q, h = calibration(gpu)
        print(f"{gpu.name}: KV cache {gpu.kv_tokens:,.0f} tokens, q {q:.3f}, h {h:.4f} s")
    for slo in SLOS:
        print(f"\nreq/s per bucket at TPOT {slo}")
        print("| bucket | " + " | ".join(g.name for g in GPUS) + " |")
        prof = profiles(slo)
        for k, name in enumerate(bucket_names()):
            print(f"| {name} | " + " | ".join(f"{prof[g.name][k]:g}" for g in GPUS) + " |")
    print("\nsingle-type GPUs at 32 req/s: paper (App. C) against these profiles")
    print("| dataset | SLO | GPU | paper | ours |")
    for dataset, slo, name, paper, ours in validation():
        print(f"| {dataset} | {slo} | {name} | {paper} | {ours} |")


if __name__ == "__main__":
    main()
