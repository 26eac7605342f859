"""The container registry: a push runs `flavorbox push IMAGE --registry
COMPONENT --json` and returns `<image without tag>@<digest>`, the repo-digest
form ZenML's own Docker push returns.

Two ways in:
- `push_image(image)`: the whole push through Flavorbox (containment check,
  the sandboxed flavor's decision, the push with Flavorbox-held credentials,
  the digest from the registry).
- `prepare_image_push(image)`: the hook ZenML's container engine calls before
  it pushes by itself; here it runs the same checks as a Flavorbox dry run, so
  a push Flavorbox would deny never starts. Called by the engine's own push
  (ZenML's no-build branch, or the `local` image builder), it refuses: the
  engine would push with its own login, around Flavorbox. Use the `flavorbox`
  image builder (`flavorbox_zenml.FlavorboxImageBuilderFlavor`).

No path around the check: `is_valid_image_name_for_registry` says yes to
every image on the registry's host, so ZenML's engine always asks
`prepare_image_push` first, which refuses a look-alike repository
(`host/team-evil` for a registry `host/team`) and any push the engine would
make by itself.
"""

import inspect
import json
import os
import shutil
import subprocess
from typing import Any, Dict, List, Optional, cast

from zenml.container_registries.base_container_registry import (
    BaseContainerRegistry,
)
from zenml.logger import get_logger

from flavorbox_zenml.flavor import FlavorboxContainerRegistryConfig

logger = get_logger(__name__)

# How long one flavorbox command may take (a push of a large image included).
_TIMEOUT_SECONDS = 3600


class FlavorboxError(RuntimeError):
    """Flavorbox refused or failed a push; the message is Flavorbox's own."""


def _strip_tag(image_name: str) -> str:
    """`host:5000/team/app:1` -> `host:5000/team/app` (a port is not a tag)."""
    name = image_name.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _without_docker_hub_prefix(name: str) -> str:
    for prefix in ("index.docker.io/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


class FlavorboxContainerRegistry(BaseContainerRegistry):
    """Container registry whose pushes go through Flavorbox."""

    @property
    def config(self) -> FlavorboxContainerRegistryConfig:
        return cast(FlavorboxContainerRegistryConfig, self._config)

    def is_inside(self, image_name: str) -> bool:
        """Whether `image_name` lies inside `uri`, segment by segment.

        ZenML's own check is a string prefix (`host/team` would accept
        `host/team-evil/app`); this one is not. Flavorbox checks again against
        its component's uri with the full reference grammar.
        """
        uri = _without_docker_hub_prefix(self.config.uri.rstrip("/"))
        name = _without_docker_hub_prefix(image_name)
        if not name.startswith(uri):
            return False
        rest = name[len(uri) :]
        return rest == "" or rest[0] in "/:@"

    def is_valid_image_name_for_registry(self, image_name: str) -> bool:
        """Whether `image_name` is on this registry's host: ZenML's container
        engine asks `prepare_image_push` before it pushes such an image only
        when this says yes, so it says yes to the whole host, look-alikes
        included, and `prepare_image_push` refuses them."""
        host = _without_docker_hub_prefix(self.config.uri.rstrip("/")).split("/", 1)[0]
        name = _without_docker_hub_prefix(image_name)
        return name == host or name.startswith(host + "/")

    def _binary(self) -> str:
        configured = self.config.flavorbox_binary
        if configured:
            return configured
        found = shutil.which("flavorbox")
        if not found:
            raise FlavorboxError(
                "The `flavorbox` executable was not found on PATH: install "
                "Flavorbox or set `flavorbox_binary` on the container registry "
                f"component (`zenml container-registry update {self.name} "
                "--flavorbox_binary=/path/to/flavorbox`)."
            )
        return found

    def _env(self) -> Dict[str, str]:
        env = dict(os.environ)
        if self.config.flavorbox_home:
            env["FLAVORBOX_HOME"] = self.config.flavorbox_home
        if self.config.server_url:
            env["FLAVORBOX_SERVER"] = self.config.server_url
            token = self.config.token  # resolves a `{{secret.key}}` reference
            if not token:
                raise FlavorboxError(
                    f"`server_url` is set on container registry `{self.name}` but "
                    "`token` is not: create a ZenML secret with the tenant token "
                    "and set --token='{{secret_name.token}}'."
                )
            env["FLAVORBOX_TOKEN"] = token
        return env

    def _flavorbox_push(self, image_name: str, dry_run: bool) -> Dict[str, Any]:
        """Runs `flavorbox push` and returns its JSON report."""
        command: List[str] = [
            self._binary(),
            "push",
            image_name,
            "--registry",
            self.config.component,
            "--json",
        ]
        if dry_run:
            command.append("--dry-run")
        try:
            result = subprocess.run(
                command,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                timeout=_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FlavorboxError(f"Could not run `{command[0]}`: {e}") from e
        # Flavorbox writes progress, flavor log lines and warnings to stderr.
        for line in result.stderr.splitlines():
            if not line.startswith("error: "):
                logger.info("flavorbox: %s", line)
        if result.returncode != 0:
            lines = [
                line[len("error: ") :] if line.startswith("error: ") else line
                for line in result.stderr.strip().splitlines()
                if line.startswith("error: ") or line.startswith("  ")
            ]
            message = "\n".join(lines) or result.stderr.strip() or result.stdout.strip()
            raise FlavorboxError(
                f"Flavorbox refused to push `{image_name}` through registry "
                f"component `{self.config.component}`: {message}"
            )
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError as e:
            raise FlavorboxError(
                f"Flavorbox printed no JSON report for `{image_name}`: {e}"
            ) from e
        if not isinstance(report, dict):
            raise FlavorboxError(f"Flavorbox printed an unexpected report: {report!r}")
        for warning in report.get("warnings") or []:
            logger.warning("flavorbox: %s", warning)
        return report

    def check_inside(self, image_name: str) -> None:
        """Raises `ValueError` unless `image_name` lies inside `uri`."""
        if not self.is_inside(image_name):
            # ZenML 0.98.0's own wording (LocalImageBuilder._check_registry_image).
            raise ValueError(
                f"Container image `{image_name}` does not belong to container "
                f"registry `{self.config.uri}`."
            )

    def prepare_image_push(self, image_name: str) -> None:
        """Runs Flavorbox's checks and the flavor's decision without pushing;
        refuses when ZenML's container engine calls it before a push of its
        own (see the module docs)."""
        self.check_inside(image_name)
        if _called_by_engine_push():
            raise FlavorboxError(
                f"ZenML's container engine is about to push `{image_name}` itself, "
                "with its own registry login, around Flavorbox. Build and push "
                "pipeline images with the `flavorbox` image builder instead: "
                "`zenml image-builder flavor register "
                "flavorbox_zenml.FlavorboxImageBuilderFlavor`, `zenml image-builder "
                "register flavorbox-builder --flavor=flavorbox`, and that builder in "
                "the stack (`zenml stack update -i flavorbox-builder`); keep "
                "`DockerSettings(skip_build=False)` and give the pipeline a "
                "Dockerfile or requirements, so ZenML builds instead of retagging "
                "a parent image and pushing it with the engine."
            )
        self._flavorbox_push(image_name, dry_run=True)

    def push_image(self, image_name: str) -> str:
        """Pushes `image_name` through Flavorbox; returns `repo@sha256:...`.

        Raises:
            ValueError: the image is not inside this registry's `uri`.
            FlavorboxError: Flavorbox refused (the flavor's reason) or failed.
            RuntimeError: no digest came back (ZenML's own message).
        """
        self.check_inside(image_name)
        logger.info("Pushing container image `%s` through Flavorbox.", image_name)
        report = self._flavorbox_push(image_name, dry_run=False)
        digest: Optional[str] = report.get("digest")
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise RuntimeError(
                f"Unable to find repo digest after pushing image {image_name}."
            )
        logger.info("Finished pushing container image.")
        return f"{_strip_tag(image_name)}@{digest}"


def _called_by_engine_push() -> bool:
    """Whether ZenML's container engine's own `push_image` is on the stack:
    it calls `prepare_image_push` and then pushes with its own login."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            module = frame.f_globals.get("__name__", "")
            if frame.f_code.co_name == "push_image" and module.startswith(
                "zenml.container_engines"
            ):
                return True
            frame = frame.f_back
        return False
    finally:
        del frame
