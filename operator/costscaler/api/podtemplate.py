"""The pod template of an InferenceDeployment: the PodTemplateSpec subset the operator copies.

Every field is typed, so the CRD's schema is structural all the way down: the API server
rejects (strict field validation, kubectl's default) or prunes any field not listed here, which
bounds the template's depth and keeps a hostile body (a template nested thousands of levels
deep) out of etcd, where it would crash every JSON parser that watches it. Lists, maps and
strings carry maximum sizes for the same reason.

The rules here are the template half of the security contract: whoever may create an
InferenceDeployment makes the operator create pods, so those pods may not be privileged, share
the node's PID, network or IPC namespaces, mount node paths, or run under a ServiceAccount
other than `default` or one named `inference-*` (a name a namespace admin gives on purpose).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from costscaler.api.common import ApiModel, LabelSelector, Name, Rule, Toleration
from costscaler.api.container import Container, ObjectRef, Quantity

ALLOWED_SERVICE_ACCOUNT_PREFIX = "inference-"

Labels = Annotated[
    dict[str, Annotated[str, Field(max_length=63)]],
    Field(max_length=64),
]
Annotations = Annotated[
    dict[str, Annotated[str, Field(max_length=16384)]],
    Field(max_length=64),
]


def _false(field: str, attr: str) -> Rule:
    """A rule that the boolean `field` (attribute `attr`) is unset or false."""
    return Rule(
        cel=f"!has(self.{field}) || !self.{field}",
        message=f"{field} is not allowed: pods of an InferenceDeployment may not share the "
        f"node's namespaces; remove spec.template.spec.{field}",
        check=lambda m: not getattr(m, attr),
        field_path=f".{field}",
    )


class KeyToPath(ApiModel):
    """One key of a ConfigMap or Secret volume, as a file."""

    key: str = Field(max_length=253, description="The key.")
    path: str = Field(max_length=4096, description="Relative file path.")


class ConfigMapVolume(ApiModel):
    """A ConfigMap as files."""

    name: Name = Field(description="ConfigMap name.")
    items: list[KeyToPath] | None = Field(default=None, max_length=64, description="Keys.")
    optional: bool | None = Field(default=None, description="May be absent.")


class SecretVolume(ApiModel):
    """A Secret as files."""

    secret_name: Name = Field(description="Secret name.")
    items: list[KeyToPath] | None = Field(default=None, max_length=64, description="Keys.")
    optional: bool | None = Field(default=None, description="May be absent.")


class EmptyDir(ApiModel):
    """Scratch space for the pod's life (medium Memory for /dev/shm)."""

    medium: Literal["", "Memory"] | None = Field(default=None, description='"" or Memory.')
    size_limit: Quantity | None = Field(default=None, description="Size limit, e.g. 8Gi.")


class ClaimRef(ApiModel):
    """A PersistentVolumeClaim in the same namespace."""

    claim_name: Name = Field(description="Claim name.")
    read_only: bool | None = Field(default=None, description="Mount read-only.")


class HostPath(ApiModel):
    """A node path: refused (see the rule on Volume)."""

    path: str = Field(max_length=4096, description="Path on the node.")
    type: str | None = Field(default=None, max_length=32, description="Path type.")


class Volume(ApiModel):
    """A volume of the pod (hostPath is refused)."""

    name: Name = Field(description="Volume name.")
    empty_dir: EmptyDir | None = Field(default=None, description="Scratch space.")
    config_map: ConfigMapVolume | None = Field(default=None, description="A ConfigMap.")
    secret: SecretVolume | None = Field(default=None, description="A Secret.")
    persistent_volume_claim: ClaimRef | None = Field(default=None, description="A claim.")
    host_path: HostPath | None = Field(default=None, description="Not allowed.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.hostPath)",
            message="hostPath volumes are not allowed: they expose the node's files; use "
            "emptyDir, a configMap, a secret or a persistentVolumeClaim",
            check=lambda m: m.host_path is None,
            field_path=".hostPath",
        ),
    )


class TopologySpread(ApiModel):
    """Spread the pods over a topology (zones, nodes): a zone's spot reclaim takes fewer."""

    max_skew: int = Field(ge=1, le=1000, description="Most pods more in one domain than another.")
    topology_key: str = Field(max_length=317, description="Node label, e.g. a zone label.")
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description="DoNotSchedule or ScheduleAnyway."
    )
    label_selector: LabelSelector | None = Field(default=None, description="Pods counted.")
    min_domains: int | None = Field(default=None, ge=1, description="Fewest domains.")


class PodSecurityContext(ApiModel):
    """Pod-wide security settings."""

    run_as_user: int | None = Field(default=None, ge=0, description="UID.")
    run_as_group: int | None = Field(default=None, ge=0, description="GID.")
    run_as_non_root: bool | None = Field(default=None, description="Refuse to run as root.")
    fs_group: int | None = Field(default=None, ge=0, description="Group of volumes' files.")


class PodSpec(ApiModel):
    """The pod's spec; the operator merges each pool's placement into it."""

    containers: list[Container] = Field(min_length=1, max_length=16, description="Containers.")
    init_containers: list[Container] | None = Field(
        default=None, max_length=16, description="Containers run to completion first."
    )
    volumes: list[Volume] | None = Field(default=None, max_length=64, description="Volumes.")
    node_selector: Labels | None = Field(default=None, description="Node labels required.")
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description="Taints tolerated (the pool's are added)."
    )
    topology_spread_constraints: list[TopologySpread] | None = Field(
        default=None, max_length=8, description="How to spread the pods."
    )
    service_account_name: Name | None = Field(
        default=None,
        description=f"default, or a name starting {ALLOWED_SERVICE_ACCOUNT_PREFIX} (others are "
        "refused: the template must not borrow another workload's rights).",
    )
    automount_service_account_token: bool | None = Field(default=None, description="Mount it.")
    image_pull_secrets: list[ObjectRef] | None = Field(
        default=None, max_length=16, description="Registry credentials."
    )
    priority_class_name: Name | None = Field(default=None, description="PriorityClass.")
    runtime_class_name: Name | None = Field(default=None, description="RuntimeClass.")
    termination_grace_period_seconds: int | None = Field(
        default=None, ge=0, le=86400, description="Time to drain on stop, seconds."
    )
    security_context: PodSecurityContext | None = Field(default=None, description="Security.")
    host_pid: bool | None = Field(default=None, alias="hostPID", description="Must be unset.")
    host_network: bool | None = Field(default=None, description="Must be unset or false.")
    host_ipc: bool | None = Field(default=None, alias="hostIPC", description="Must be unset.")

    rules: ClassVar[tuple[Rule, ...]] = (
        _false("hostPID", "host_pid"),
        _false("hostNetwork", "host_network"),
        _false("hostIPC", "host_ipc"),
        Rule(
            cel="!has(self.serviceAccountName) || self.serviceAccountName == 'default' || "
            f"self.serviceAccountName.startsWith('{ALLOWED_SERVICE_ACCOUNT_PREFIX}')",
            message="serviceAccountName must be default or start with "
            f"{ALLOWED_SERVICE_ACCOUNT_PREFIX} (create one for the model server; the template "
            "may not run under another workload's ServiceAccount)",
            check=lambda m: (
                m.service_account_name in (None, "default")
                or m.service_account_name.startswith(ALLOWED_SERVICE_ACCOUNT_PREFIX)
            ),
            field_path=".serviceAccountName",
        ),
    )


class PodMeta(ApiModel):
    """Labels and annotations of the pods."""

    labels: Labels | None = Field(default=None, description="Pod labels.")
    annotations: Annotations | None = Field(default=None, description="Pod annotations.")


class PodTemplate(ApiModel):
    """A PodTemplateSpec: the model server's pods."""

    metadata: PodMeta | None = Field(default=None, description="Pod labels and annotations.")
    spec: PodSpec = Field(description="The pod's spec.")
