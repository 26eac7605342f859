"""The flavor and its config. Kept free of heavy imports: ZenML imports the
flavor to register and list it, and loads the implementation only to use it."""

from typing import TYPE_CHECKING, Optional, Type

from pydantic import Field, field_validator
from zenml.container_registries.base_container_registry import (
    BaseContainerRegistryConfig,
    BaseContainerRegistryFlavor,
)
from zenml.utils.secret_utils import SecretField

if TYPE_CHECKING:
    from flavorbox_zenml.registry import FlavorboxContainerRegistry

FLAVOR_NAME = "flavorbox"

# Flavorbox's rule for names of registry components and secrets.
_NAME_RULE = (
    "1 to 128 letters, digits, `.`, `-` and `_`, starting with a letter or digit"
)


class FlavorboxContainerRegistryConfig(BaseContainerRegistryConfig):
    """Config of a container registry whose pushes go through Flavorbox.

    Inherits ZenML's `uri`, `default_repository` and `authentication_secret`.
    The credentials of the real registry stay with Flavorbox (a Flavorbox
    secret attached to the component), never with ZenML.
    """

    component: str = Field(
        description="Name of the Flavorbox registry component to push through "
        "(`flavorbox push IMAGE --registry COMPONENT`).",
    )
    flavorbox_binary: Optional[str] = Field(
        default=None,
        description="Path of the flavorbox executable; default: `flavorbox` on PATH.",
    )
    flavorbox_home: Optional[str] = Field(
        default=None,
        description="Flavorbox state directory for local use (FLAVORBOX_HOME); "
        "default: the CLI's own.",
    )
    server_url: Optional[str] = Field(
        default=None,
        description="URL of a Flavorbox server to push through (FLAVORBOX_SERVER); "
        "default: the CLI's saved login, else its local state.",
    )
    # No validator on this field, so it can hold a ZenML secret reference such
    # as `{{flavorbox.token}}`, resolved only when the attribute is read.
    token: Optional[str] = SecretField(
        default=None,
        description="Tenant token for `server_url` (FLAVORBOX_TOKEN). Give it as a "
        "secret reference: --token='{{flavorbox.token}}'.",
    )

    @field_validator("component")
    @classmethod
    def _component_name(cls, value: str) -> str:
        ok = (
            0 < len(value) <= 128
            and value[0].isascii()
            and value[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in ".-_") for c in value)
        )
        if not ok:
            raise ValueError(
                f"`component` `{value}` is not a Flavorbox registry component name: "
                f"use {_NAME_RULE} (see `flavorbox registry list`)"
            )
        return value

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"`server_url` `{value}` must start with `https://` (or `http://` "
                "for a server on this machine)"
            )
        return value.rstrip("/") if value else value


class FlavorboxContainerRegistryFlavor(BaseContainerRegistryFlavor):
    """Container-registry flavor `flavorbox`."""

    @property
    def name(self) -> str:
        return FLAVOR_NAME

    @property
    def config_class(self) -> Type[FlavorboxContainerRegistryConfig]:
        return FlavorboxContainerRegistryConfig

    @property
    def implementation_class(self) -> Type["FlavorboxContainerRegistry"]:
        from flavorbox_zenml.registry import FlavorboxContainerRegistry

        return FlavorboxContainerRegistry
