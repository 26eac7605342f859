"""ZenML container-registry flavor `flavorbox`: ZenML hands image pushes to
Flavorbox (the local CLI, or a Flavorbox server), which checks the image
against its registry component, asks the component's sandboxed flavor, and
pushes with the credentials it holds.

Register it with::

    zenml container-registry flavor register flavorbox_zenml.FlavorboxContainerRegistryFlavor

and the image-builder flavor `flavorbox` that builds pipeline images with the
local engine and pushes them through Flavorbox::

    zenml image-builder flavor register flavorbox_zenml.FlavorboxImageBuilderFlavor
"""

from flavorbox_zenml.flavor import (
    FLAVOR_NAME,
    FlavorboxContainerRegistryConfig,
    FlavorboxContainerRegistryFlavor,
)

from flavorbox_zenml.image_builder import (
    IMAGE_BUILDER_FLAVOR_NAME,
    FlavorboxImageBuilder,
    FlavorboxImageBuilderConfig,
    FlavorboxImageBuilderFlavor,
)

__all__ = [
    "IMAGE_BUILDER_FLAVOR_NAME",
    "FlavorboxImageBuilder",
    "FlavorboxImageBuilderConfig",
    "FlavorboxImageBuilderFlavor",
    "FLAVOR_NAME",
    "FlavorboxContainerRegistryConfig",
    "FlavorboxContainerRegistryFlavor",
]
