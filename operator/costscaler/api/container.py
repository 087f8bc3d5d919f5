"""The containers of an InferenceDeployment's pod template (see `podtemplate`).

Every field typed and every list and string bounded, for the reasons `podtemplate` gives.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from costscaler.api.common import ApiModel, Name, Rule

IntOrString = Annotated[
    int | str,
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "description": "A number or a string."},
        mode="validation",
    ),
]
Text = Annotated[str, Field(max_length=4096)]
Args = Annotated[list[Text], Field(max_length=128)]
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _quantity(value: int | str) -> int | str:
    # Checked here and by the CRD's pattern: the Deployment API refuses a bad quantity with a
    # message that names no field, so it is caught where the field is still known.
    if isinstance(value, str) and not re.match(QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a quantity: write e.g. 1, 500m or 8Gi")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "description": "A quantity, e.g. 1, 500m or 8Gi.",
        },
        mode="validation",
    ),
]
Quantities = Annotated[dict[str, Quantity], Field(max_length=16)]


class ObjectRef(ApiModel):
    """A reference to an object in the same namespace by name."""

    name: Name = Field(description="Object name.")
    optional: bool | None = Field(default=None, description="Whether it may be absent.")


class KeyRef(ObjectRef):
    """A key of a ConfigMap or Secret."""

    key: str = Field(max_length=253, description="The key.")


class FieldRef(ApiModel):
    """A field of the pod, e.g. metadata.name or status.podIP."""

    field_path: str = Field(max_length=253, description="Path of the field.")
    api_version: str | None = Field(default=None, max_length=63, description="Usually v1.")


class ResourceFieldRef(ApiModel):
    """A container's resource limit or request."""

    resource: str = Field(max_length=253, description="e.g. limits.memory.")
    container_name: str | None = Field(default=None, max_length=63, description="Container.")
    divisor: Quantity | None = Field(default=None, description="Unit, e.g. 1Mi.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: KeyRef | None = Field(default=None, description="A Secret's key.")
    config_map_key_ref: KeyRef | None = Field(default=None, description="A ConfigMap's key.")
    field_ref: FieldRef | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldRef | None = Field(default=None, description="A resource.")


class EnvVar(ApiModel):
    """An environment variable of a container."""

    name: str = Field(min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: EnvVarSource | None = Field(default=None, description="Value from a source.")


class EnvFromSource(ApiModel):
    """Every key of a ConfigMap or Secret as environment variables."""

    prefix: str | None = Field(default=None, max_length=256, description="Prefix of names.")
    config_map_ref: ObjectRef | None = Field(default=None, description="A ConfigMap.")
    secret_ref: ObjectRef | None = Field(default=None, description="A Secret.")


class ContainerPort(ApiModel):
    """A port the container listens on."""

    container_port: int = Field(ge=1, le=65535, description="Port number.")
    name: str | None = Field(default=None, max_length=15, description="Port name (IANA_SVC).")
    protocol: Literal["TCP", "UDP", "SCTP"] | None = Field(default=None, description="Protocol.")


class Resources(ApiModel):
    """Compute resources: limits and requests (e.g. nvidia.com/gpu: 1)."""

    limits: Quantities | None = Field(default=None, description="Most the container may use.")
    requests: Quantities | None = Field(default=None, description="What it is scheduled with.")


class HttpHeader(ApiModel):
    """A header of an HTTP probe."""

    name: str = Field(max_length=256, description="Header name.")
    value: str = Field(max_length=4096, description="Header value.")


class HttpGet(ApiModel):
    """An HTTP GET probe."""

    path: str | None = Field(default=None, max_length=2048, description="URL path.")
    port: IntOrString = Field(description="Port number or name.")
    scheme: Literal["HTTP", "HTTPS"] | None = Field(default=None, description="HTTP or HTTPS.")
    http_headers: list[HttpHeader] | None = Field(
        default=None, max_length=16, description="Request headers."
    )


class TcpSocket(ApiModel):
    """A TCP connect probe."""

    port: IntOrString = Field(description="Port number or name.")


class ExecAction(ApiModel):
    """A command probe: exit status 0 is healthy."""

    command: Args = Field(description="Command and arguments.")


class GrpcAction(ApiModel):
    """A gRPC health-check probe."""

    port: int = Field(ge=1, le=65535, description="Port number.")
    service: str | None = Field(default=None, max_length=256, description="Service name.")


class Probe(ApiModel):
    """A readiness, liveness or startup probe."""

    http_get: HttpGet | None = Field(default=None, description="HTTP GET.")
    tcp_socket: TcpSocket | None = Field(default=None, description="TCP connect.")
    exec: ExecAction | None = Field(default=None, description="Command.")
    grpc: GrpcAction | None = Field(default=None, description="gRPC health check.")
    initial_delay_seconds: int | None = Field(default=None, ge=0, description="Wait first, s.")
    period_seconds: int | None = Field(default=None, ge=1, description="Every, seconds.")
    timeout_seconds: int | None = Field(default=None, ge=1, description="Timeout, seconds.")
    success_threshold: int | None = Field(default=None, ge=1, description="Successes needed.")
    failure_threshold: int | None = Field(default=None, ge=1, description="Failures tolerated.")


class SleepAction(ApiModel):
    """Wait before the container is stopped."""

    seconds: int = Field(ge=0, le=3600, description="Seconds to wait.")


class Handler(ApiModel):
    """A lifecycle hook: a command, an HTTP GET or a wait."""

    exec: ExecAction | None = Field(default=None, description="Command.")
    http_get: HttpGet | None = Field(default=None, description="HTTP GET.")
    sleep: SleepAction | None = Field(default=None, description="Wait.")


class Lifecycle(ApiModel):
    """Hooks around the container's start and stop (preStop lets a model server drain)."""

    post_start: Handler | None = Field(default=None, description="After the container starts.")
    pre_stop: Handler | None = Field(default=None, description="Before the container stops.")


class VolumeMount(ApiModel):
    """A volume mounted into a container."""

    name: Name = Field(description="The volume's name.")
    mount_path: str = Field(max_length=4096, description="Path in the container.")
    read_only: bool | None = Field(default=None, description="Mount read-only.")
    sub_path: str | None = Field(default=None, max_length=4096, description="Sub-path.")


class SecurityContext(ApiModel):
    """A container's security settings (privileged is refused)."""

    privileged: bool | None = Field(default=None, description="Must be false or unset.")
    allow_privilege_escalation: bool | None = Field(default=None, description="setuid etc.")
    read_only_root_filesystem: bool | None = Field(default=None, description="Read-only root.")
    run_as_user: int | None = Field(default=None, ge=0, description="UID.")
    run_as_group: int | None = Field(default=None, ge=0, description="GID.")
    run_as_non_root: bool | None = Field(default=None, description="Refuse to run as root.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.privileged) || !self.privileged",
            message="privileged containers are not allowed: remove securityContext.privileged "
            "(it would give the pod the node's devices and kernel)",
            check=lambda m: not m.privileged,
            field_path=".privileged",
        ),
    )


class Container(ApiModel):
    """A container of the model server's pod."""

    name: Name = Field(description="Container name.")
    image: str = Field(min_length=1, max_length=1024, description="Image reference.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="When to pull."
    )
    command: Args | None = Field(default=None, description="Entrypoint.")
    args: Args | None = Field(default=None, description="Arguments.")
    working_dir: str | None = Field(default=None, max_length=4096, description="Working dir.")
    env: list[EnvVar] | None = Field(default=None, max_length=256, description="Environment.")
    env_from: list[EnvFromSource] | None = Field(
        default=None, max_length=16, description="Variables from ConfigMaps and Secrets."
    )
    ports: list[ContainerPort] | None = Field(default=None, max_length=16, description="Ports.")
    resources: Resources | None = Field(default=None, description="Compute resources.")
    readiness_probe: Probe | None = Field(default=None, description="Serving when it passes.")
    liveness_probe: Probe | None = Field(default=None, description="Restarted when it fails.")
    startup_probe: Probe | None = Field(default=None, description="Holds the others at start.")
    lifecycle: Lifecycle | None = Field(default=None, description="Start and stop hooks.")
    volume_mounts: list[VolumeMount] | None = Field(
        default=None, max_length=64, description="Volumes mounted."
    )
    security_context: SecurityContext | None = Field(default=None, description="Security.")
