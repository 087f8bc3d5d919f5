"""Operator settings: flags of `costscaler run` over `COSTSCALER_*` environment variables."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from costscaler.adapters.promql import SeriesLabels


class Settings(BaseSettings):
    """Everything `costscaler run` can be told; each field is also `COSTSCALER_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="COSTSCALER_", extra="ignore")

    prometheus_url: str = Field(default="http://127.0.0.1:9090", description="Prometheus base URL.")
    prometheus_token: SecretStr | None = Field(
        default=None, description="Bearer token (from a Secret, through the environment)."
    )
    prometheus_token_file: Path | None = Field(
        default=None, description="File holding the bearer token (a mounted Secret)."
    )
    prometheus_ca_file: Path | None = Field(default=None, description="CA bundle for HTTPS.")
    prometheus_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    scrape_interval_seconds: float = Field(
        default=30.0, gt=0, description="Prometheus scrape interval; older than 2x is stale."
    )
    rate_window: str = Field(
        default="1m", pattern=r"^[0-9]+(ms|s|m|h)$", description="PromQL rate() range."
    )
    label_namespace: str = Field(default="namespace", description="Series label: namespace.")
    label_deployment: str = Field(
        default="deployment", description="Series label: InferenceDeployment name."
    )
    label_pool: str = Field(default="pool", description="Series label: CapacityPool name.")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces to serve.")
    all_namespaces: bool = Field(default=False, description="Serve every namespace.")
    node_layer: bool = Field(
        default=True,
        description="Drive Karpenter for pools with spec.nodePool: write Managed NodePools, "
        "read Reference ones, keep warm CapacityBuffers. Off: pools are the nodes that match "
        "their placement, as without spec.nodePool.",
    )
    warm_namespace: str = Field(
        default="default",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Namespace of the warm spare nodes' CapacityBuffers and PodTemplates.",
    )
    interval_seconds: float = Field(
        default=15.0, ge=1, le=3600, description="Seconds between two decisions of a deployment."
    )
    status_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Status refresh period when nothing material changed (a changed decision, "
        "condition or replica count is written at once).",
    )
    json_logs: bool = Field(default=False, description="Log one JSON object per line.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_host: str = Field(default="0.0.0.0", description="Address of /metrics and /healthz.")
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")
    peering: Literal["cluster", "namespaced", "standalone"] = Field(
        default="cluster",
        description="kopf peering: replicas with the highest priority act, the others stand by.",
    )
    peering_name: str = Field(default="costscaler", description="Name of the peering object.")
    peering_lifetime_seconds: int = Field(
        default=15,
        ge=5,
        le=600,
        description="How long a replica's peering keep-alive counts as alive (kopf renews it "
        "5-10 s before it ends). A replacement of the same or lower priority than a replica "
        "killed without notice waits this long; kopf's default is 60 s.",
    )
    kube_connections: int = Field(
        default=8,
        ge=2,
        le=1024,
        description="Concurrent API requests of kopf (besides its watch streams), and of the "
        "operator's own writes; more queue. Each is a kept-alive TLS connection.",
    )
    priority: int = Field(
        default_factory=lambda: random.randint(1, 2**30),
        description="Peering priority; random by default so that two replicas never tie "
        "(kopf pauses every operator of a tied priority).",
    )
    kubeconfig: str | None = Field(
        default=None,
        validation_alias=AliasChoices("COSTSCALER_KUBECONFIG", "KUBECONFIG", "kubeconfig"),
        description="Kubeconfig file when not running in a cluster.",
    )

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://prometheus:9090")
        return value.rstrip("/")

    def token(self) -> str | None:
        """The bearer token: the file wins (it can be rotated), then the variable."""
        if self.prometheus_token_file is not None:
            return self.prometheus_token_file.read_text(encoding="utf-8").strip() or None
        return self.prometheus_token.get_secret_value() if self.prometheus_token else None

    def series_labels(self) -> SeriesLabels:
        """The label names the PromQL presets group by."""
        return SeriesLabels(self.label_namespace, self.label_deployment, self.label_pool)

    @property
    def fetch_deadline_seconds(self) -> float:
        """How long a tick's Prometheus fetch may take: the query timeout, at most half the
        interval, so that a hung Prometheus leaves each tick time to decide (a hold) and the
        next round starts on time."""
        return min(self.prometheus_timeout_seconds, self.interval_seconds / 2)

    @property
    def max_age_seconds(self) -> float:
        """Samples older than two scrape intervals are stale."""
        return 2 * self.scrape_interval_seconds
