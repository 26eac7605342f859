"""ZenML container-registry flavor `flavorbox`: ZenML hands image pushes to
Flavorbox (the local CLI, or a Flavorbox server), which checks the image
against its registry component, asks the component's sandboxed flavor, and
pushes with the credentials it holds.

Register it with::

    zenml container-registry flavor register flavorbox_zenml.FlavorboxContainerRegistryFlavor
"""

from flavorbox_zenml.flavor import (
    FLAVOR_NAME,
    FlavorboxContainerRegistryConfig,
    FlavorboxContainerRegistryFlavor,
)

__all__ = [
    "FLAVOR_NAME",
    "FlavorboxContainerRegistryConfig",
    "FlavorboxContainerRegistryFlavor",
]
