"""The image builder: ZenML builds its pipeline images with the local
container engine (no registry login, no ZenML credentials), then pushes
them through Flavorbox, and runs the steps on `<repo>@sha256:...`: the exact
image Flavorbox checked, its flavor approved and the registry stored (or, for
a push through a Flavorbox server with steps on the local engine, on the
image's content-addressed local id).

Register it with::

    zenml image-builder flavor register flavorbox_zenml.FlavorboxImageBuilderFlavor
    zenml image-builder register flavorbox-builder --flavor=flavorbox

and use it in a stack with a container registry of flavor `flavorbox`.
"""

from typing import TYPE_CHECKING, Optional, Type, cast

from zenml.container_engines import get_container_engine
from zenml.image_builders import (
    BaseImageBuilder,
    BaseImageBuilderConfig,
    BaseImageBuilderFlavor,
)
from zenml.logger import get_logger

from flavorbox_zenml.registry import FlavorboxContainerRegistry, FlavorboxError

if TYPE_CHECKING:
    import docker
    from zenml.config.docker_settings import DockerBuildOptions
    from zenml.container_registries.base_container_registry import (
        BaseContainerRegistry,
    )
    from zenml.image_builders import BuildContext

logger = get_logger(__name__)

#: The flavor's name in ZenML (`--flavor=flavorbox`).
IMAGE_BUILDER_FLAVOR_NAME = "flavorbox"


class FlavorboxImageBuilderConfig(BaseImageBuilderConfig):
    """Nothing to set: where Flavorbox runs (the CLI's home, or a server and
    its token) is the container registry's configuration."""


class FlavorboxImageBuilder(BaseImageBuilder):
    """Builds with the local engine, pushes through Flavorbox."""

    @property
    def config(self) -> FlavorboxImageBuilderConfig:
        return cast(FlavorboxImageBuilderConfig, self._config)

    @property
    def is_building_locally(self) -> bool:
        return True

    def build(
        self,
        image_name: str,
        build_context: "BuildContext",
        docker_build_options: Optional["DockerBuildOptions"] = None,
        container_registry: Optional["BaseContainerRegistry"] = None,
    ) -> str:
        """Builds `image_name` and, with a registry, pushes it through
        Flavorbox; returns `<repo>@sha256:...` (or the name, unpushed). When a
        Flavorbox server pushed it and the steps run on the local engine
        (`local_docker`), returns the local image id instead: that engine
        cannot resolve the registry digest without a registry login.

        Raises:
            FlavorboxError: the registry is not a Flavorbox one (its push
                would go around Flavorbox), or Flavorbox refused the push.
            ValueError: the image is not inside the registry's `uri`; nothing
                was built.
        """
        registry: Optional[FlavorboxContainerRegistry] = None
        if container_registry is not None:
            if not isinstance(container_registry, FlavorboxContainerRegistry):
                raise FlavorboxError(
                    f"The `{IMAGE_BUILDER_FLAVOR_NAME}` image builder pushes only "
                    "through a container registry of flavor `flavorbox`; the "
                    f"stack's registry `{container_registry.name}` would push "
                    "around Flavorbox. Register one with `zenml container-registry "
                    "register NAME --flavor=flavorbox --uri=... --component=...`."
                )
            registry = container_registry
            # Refused before anything is built.
            registry.check_inside(image_name)
        # No registry login: the engine builds from what it has, and only
        # Flavorbox holds the registry's credentials.
        get_container_engine().build(
            image_name=image_name,
            build_context=build_context,
            docker_build_options=docker_build_options,
            container_registry=None,
        )
        if registry is None:
            return image_name
        import docker

        engine = docker.from_env()
        built = _local_image_id(engine, image_name)
        pushed = registry.push_image(image_name)
        if _local_image_id(engine, pushed) is not None or not _steps_run_on_this_engine():
            # Pushed by this engine (it knows `repo@sha256:...`), or the steps
            # run elsewhere and pull that exact manifest with their own access.
            return pushed
        # Pushed by a Flavorbox server from the uploaded image: this engine
        # never saw the registry's digest, and pulling it would need the
        # registry login only Flavorbox holds. The local steps run the image
        # by its content-addressed id, the one that was uploaded and pushed.
        if built is None or _local_image_id(engine, image_name) != built:
            raise FlavorboxError(
                f"`{image_name}` changed in the local engine while Flavorbox pushed "
                f"it (pushed as {pushed}); run the pipeline again."
            )
        logger.info(
            "Pushed `%s` through the Flavorbox server; the local Docker steps run "
            "it as %s.",
            pushed,
            built,
        )
        return built


def _local_image_id(engine: "docker.DockerClient", reference: str) -> Optional[str]:
    """The local engine's id (`sha256:...`) of `reference`, if it has it."""
    import docker

    try:
        return str(engine.images.get(reference).id)
    except docker.errors.DockerException:
        return None


def _steps_run_on_this_engine() -> bool:
    """Whether the active stack's orchestrator runs the steps' containers on
    the local engine (ZenML's `local_docker`)."""
    from zenml.client import Client

    return bool(Client().active_stack.orchestrator.flavor == "local_docker")


class FlavorboxImageBuilderFlavor(BaseImageBuilderFlavor):
    """ZenML image-builder flavor `flavorbox`."""

    @property
    def name(self) -> str:
        return IMAGE_BUILDER_FLAVOR_NAME

    @property
    def config_class(self) -> Type[FlavorboxImageBuilderConfig]:
        return FlavorboxImageBuilderConfig

    @property
    def implementation_class(self) -> Type[FlavorboxImageBuilder]:
        return FlavorboxImageBuilder
