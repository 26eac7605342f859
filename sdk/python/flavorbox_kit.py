"""Flavorbox's helper for flavors written in Python: the Python twin of the
Rust ``flavor-kit`` crate.

A flavor is a class with three methods, written against plain Python types
(:class:`Metadata`, :class:`Issue`, :class:`Image`, :class:`ImageInfo`,
:class:`Approve`, :class:`Deny`) and a :class:`Host` handed in on every call,
so its logic runs and is unit-tested with a plain ``python3`` (use
:class:`FakeHost`). :func:`export` wires it to the ``flavorbox:registry`` WIT
world (0.2, ``wit/v0.2``; a flavor built against 0.1 works too): the module
componentize-py builds must bind the result to the name ``Flavor``::

    class Acme(flavorbox_kit.Flavor):
        ...

    Flavor = flavorbox_kit.export(Acme)

A flavor that asks for the :data:`IMAGE_INFO` capability in its metadata
gets what the host read from the image (:class:`ImageInfo`: platform,
labels, sizes, ...) as the ``info`` argument of ``prepare_image_push``:
``prepare_image_push(self, host, config, image, info)``. ``info`` is
``None`` when the host has only the image's name (a dry run of an image it
does not have). A ``prepare_image_push`` without the ``info`` parameter, as
written for 0.1, keeps working: the adapter passes ``info`` only to a
method that takes it.

The config rules every registry shares (ZenML's base fields ``uri`` and
``default_repository``, the Docker reference grammar of path components,
DNS limits) are here as conveniences, with the same messages as the Rust
kit: :class:`ConfigCheck` collects every issue, :func:`validate_uri_config`
is the whole ``validate-config`` of most flavors.

This file has no dependencies beyond the standard library; copy it next to
your flavor (``flavorbox flavor new --lang python`` does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field as _field
from typing import Any, Callable, Dict, List, Optional, Union

__all__ = [
    "REPOSITORY_EXISTS", "IMAGE_INFO", "CAPABILITIES", "Metadata", "Issue", "Image",
    "Platform", "Layer", "ImageInfo", "Approve", "Deny", "Invalid",
    "LookupFailed", "Host", "NoHost", "FakeHost", "Flavor", "export", "parse_config",
    "with_example", "normalize_uri", "RegistryUri", "is_path_component",
    "is_repository_path", "is_dns_label", "expect_segments", "check_segments",
    "check_path_components", "ConfigCheck", "validate_uri_config", "approve_push",
    "config_schema", "json_kind", "BASE_FIELDS", "REPOSITORY_EXAMPLE", "MAX_PATH_LEN",
    "MAX_LABEL_LEN", "MAX_HOST_LEN", "PATH_COMPONENT_RULE",
]

#: The capability to call ``host.repository_exists`` (ask for it in ``Metadata``).
REPOSITORY_EXISTS = "repository-exists"
#: The capability to receive :class:`ImageInfo` in ``prepare_image_push`` (WIT 0.2).
IMAGE_INFO = "image-info"
#: Every capability a flavor may ask for.
CAPABILITIES = (REPOSITORY_EXISTS, IMAGE_INFO)

#: The longest repository path (the name without the domain) Docker accepts.
MAX_PATH_LEN = 255
#: The longest DNS label (RFC 1035).
MAX_LABEL_LEN = 63
#: The longest DNS name (RFC 1035, without the trailing dot).
MAX_HOST_LEN = 253
#: What the path-component rule allows, for messages.
PATH_COMPONENT_RULE = "lowercase letters and digits, optionally separated by `.`, `_`, `__` or `-`"
#: The fields of ZenML's base container-registry config, which every flavor accepts.
BASE_FIELDS = ("uri", "default_repository")
#: An example ``default_repository``.
REPOSITORY_EXAMPLE = "my-team/my-app"


@dataclass
class Metadata:
    """What a flavor says about itself (the ``metadata`` export)."""

    name: str
    display_name: str
    description: str
    docs_url: str
    config_schema: str
    logo_url: str = ""
    capabilities: List[str] = _field(default_factory=list)


@dataclass
class Issue:
    """One problem with a config: the field path (empty for the whole config) and what is wrong."""

    field: str
    message: str

    @staticmethod
    def with_example(field: str, problem: str, example: str) -> "Issue":
        """An issue whose message states ``problem`` and then shows a valid ``example``."""
        return Issue(field, with_example(field, problem, example))


@dataclass
class Image:
    """An image reference as parsed and normalised by the host."""

    domain: str
    path: str
    tag: Optional[str]
    digest: Optional[str]
    name: str


@dataclass
class Platform:
    """The platform an image was built for: ``str()`` is ``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: Optional[str] = None

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@dataclass
class Layer:
    """One layer of an image (base first): its digest and sizes in bytes, when the host knows them."""

    digest: str
    compressed_size: Optional[int] = None
    uncompressed_size: Optional[int] = None


@dataclass
class ImageInfo:
    """What the host read from the image itself, for a flavor that asks for :data:`IMAGE_INFO`.

    Sizes are in bytes; ``None`` where the host does not know them.
    ``labels`` is a dict (key to value); ``env_names`` has the names of the
    config's ``Env`` entries only, never their values. The host bounds every
    field (at most 64 labels, 128 layers listed, ...) and names what it cut
    in ``truncated`` (e.g. ``["labels"]``), so a policy can refuse an image
    it could not see whole. ``layer_count`` is always the true count (it
    defaults to ``len(layers)`` when built by hand, in tests)."""

    platform: Platform
    config_digest: str = ""
    created: Optional[str] = None
    age_seconds: Optional[int] = None
    user: str = ""
    labels: Dict[str, str] = _field(default_factory=dict)
    exposed_ports: List[str] = _field(default_factory=list)
    entrypoint: List[str] = _field(default_factory=list)
    cmd: List[str] = _field(default_factory=list)
    env_names: List[str] = _field(default_factory=list)
    layer_count: Optional[int] = None
    layers: List[Layer] = _field(default_factory=list)
    compressed_size: Optional[int] = None
    uncompressed_size: Optional[int] = None
    truncated: List[str] = _field(default_factory=list)

    def __post_init__(self) -> None:
        if self.layer_count is None:
            self.layer_count = len(self.layers)

    @property
    def size(self) -> Optional[int]:
        """The compressed size when the host knows it (what the registry stores; a server
        measures it, a CLI's engine does not), else the uncompressed one, else ``None``."""
        if self.compressed_size is not None:
            return self.compressed_size
        return self.uncompressed_size


@dataclass
class Approve:
    """Push, showing these warnings."""

    warnings: List[str] = _field(default_factory=list)


@dataclass
class Deny:
    """Do not push, for this reason."""

    reason: str


Decision = Union[Approve, Deny]


class Invalid(Exception):
    """Raised by ``validate_config`` to reject a config with every issue found."""

    def __init__(self, issues: List[Issue]):
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in issues))
        self.issues = list(issues)


class LookupFailed(Exception):
    """Raised by ``host.repository_exists`` when the host cannot answer; ``str()`` is the reason."""


class Host:
    """The questions a flavor may ask its host (the WIT ``host`` imports)."""

    def log(self, level: str, message: str) -> None:
        """Log a line at ``level`` (``trace``, ``debug``, ``info``, ``warn``, ``error``)."""
        raise NotImplementedError

    def repository_exists(self, repository: str) -> bool:
        """Whether ``repository`` exists on the component's registry; raises :class:`LookupFailed`."""
        raise NotImplementedError


class NoHost(Host):
    """A host for native use that logs nothing and knows no repository."""

    def log(self, level: str, message: str) -> None:
        pass

    def repository_exists(self, repository: str) -> bool:
        raise LookupFailed("no host")


class FakeHost(Host):
    """A host for unit tests: answers ``repository_exists`` with ``answer`` (a bool, or a
    string that is raised as the reason it failed) and records what it was asked and logged."""

    def __init__(self, answer: Union[bool, str] = True):
        self.answer = answer
        self.asked: List[str] = []
        self.logs: List[tuple] = []

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def repository_exists(self, repository: str) -> bool:
        self.asked.append(repository)
        if isinstance(self.answer, str):
            raise LookupFailed(self.answer)
        return self.answer


class Flavor:
    """A container-registry flavor's logic. Subclass it and implement the three methods."""

    def metadata(self) -> Metadata:
        raise NotImplementedError

    def validate_config(self, host: Host, config: str) -> Union[str, Dict[str, Any]]:
        """Return the normalised config (JSON text or a dict), or raise :class:`Invalid`."""
        raise NotImplementedError

    def prepare_image_push(self, host: Host, config: str, image: Image,
                           info: Optional[ImageInfo] = None) -> Decision:
        """Return :class:`Approve` or :class:`Deny`. ``info`` is what the host read from the
        image: given only to a flavor whose metadata asks for :data:`IMAGE_INFO`, and ``None``
        when the host has only the image's name. The ``info`` parameter may be left out."""
        return Approve([])


# --- the WIT adapter ---------------------------------------------------------

_LEVELS = ("trace", "debug", "info", "warn", "error")


def export(flavor_class: type) -> type:
    """The class componentize-py exports for ``flavor_class``: bind it to ``Flavor``.

    The generated ``wit_world`` bindings exist only while componentize-py
    builds the component, so they are imported here, not at the top of the
    file: the rest of this module (and your flavor's logic) imports natively.
    """
    try:
        from wit_world.exports import flavor as w  # type: ignore[import-not-found]
        from wit_world.imports import host as h  # type: ignore[import-not-found]
        from componentize_py_types import Err  # type: ignore[import-not-found]
    except ImportError:
        # Native use (tests): there is nothing to export to.
        return flavor_class

    class WasmHost(Host):
        def log(self, level: str, message: str) -> None:
            index = _LEVELS.index(level) if level in _LEVELS else 2
            h.log(h.LogLevel(index), message)

        def repository_exists(self, repository: str) -> bool:
            try:
                return h.repository_exists(repository)
            except Err as e:
                raise LookupFailed(str(e.value)) from None

    logic = flavor_class()
    wasm_host = WasmHost()
    # How `prepare_image_push` takes `info`, decided once, at build time.
    pass_info = _info_parameter(logic.prepare_image_push)

    class Exported:
        def metadata(self) -> Any:
            try:
                return self._metadata()
            except BaseException as e:  # noqa: BLE001 - see _die
                _die(e)

        def validate_config(self, config: str) -> str:
            try:
                return self._validate_config(config)
            except Err:
                raise
            except BaseException as e:  # noqa: BLE001 - see _die
                _die(e)

        # `info` is absent when the component is built against WIT 0.1.
        def prepare_image_push(self, config: str, image: Any, info: Any = None) -> Any:
            try:
                return self._prepare_image_push(config, image, info)
            except BaseException as e:  # noqa: BLE001 - see _die
                _die(e)

        def _metadata(self) -> Any:
            m = logic.metadata()
            caps = []
            for c in m.capabilities:
                if c not in CAPABILITIES:
                    raise ValueError(f"unknown capability {c!r} in the metadata: use "
                                     "kit.REPOSITORY_EXISTS or kit.IMAGE_INFO")
                member = getattr(w.Capability, c.upper().replace("-", "_"), None)
                if member is None:
                    raise ValueError(f"capability {c!r} needs a newer WIT than this component "
                                     "is built against: build it with Flavorbox's wit/v0.2")
                if c == IMAGE_INFO and pass_info is None:
                    raise ValueError("the metadata asks for `image-info`, but prepare_image_push "
                                     "has no `info` parameter to receive it: define it as "
                                     "prepare_image_push(self, host, config, image, info)")
                caps.append(member)
            return w.FlavorMetadata(
                m.name, m.display_name, m.description, m.docs_url, m.logo_url,
                m.config_schema, caps,
            )

        def _validate_config(self, config: str) -> str:
            try:
                result = logic.validate_config(wasm_host, config)
            except Invalid as invalid:
                raise Err([w.ConfigIssue(i.field, i.message) for i in invalid.issues]) from None
            if isinstance(result, str):
                return result
            return json.dumps(result, separators=(",", ":"), sort_keys=True)

        def _prepare_image_push(self, config: str, image: Any, info: Any) -> Any:
            image = Image(image.domain, image.path, image.tag, image.digest, image.name)
            if pass_info == "positional":
                decision = logic.prepare_image_push(wasm_host, config, image, _image_info(info))
            elif pass_info == "keyword":
                decision = logic.prepare_image_push(wasm_host, config, image,
                                                    info=_image_info(info))
            else:
                decision = logic.prepare_image_push(wasm_host, config, image)
            if isinstance(decision, Deny):
                return w.PushDecision_Deny(decision.reason)
            return w.PushDecision_Approve(list(decision.warnings))

    Exported.__name__ = "Flavor"
    return Exported


def _info_parameter(method: Callable[..., Any]) -> Optional[str]:
    """How ``method`` (a bound ``prepare_image_push``) takes ``info``: ``"positional"`` (a
    fourth positional parameter, or ``*args``), ``"keyword"`` (a keyword-only ``info``, or
    ``**kwargs``), or ``None`` (it does not: a flavor written for WIT 0.1)."""
    import inspect

    try:
        parameters = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return "positional"
    kinds = inspect.Parameter
    positional = [p for p in parameters
                  if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 4 or any(p.kind == kinds.VAR_POSITIONAL for p in parameters):
        return "positional"
    if any(p.kind == kinds.VAR_KEYWORD or (p.kind == kinds.KEYWORD_ONLY and p.name == "info")
           for p in parameters):
        return "keyword"
    return None


def _image_info(info: Any) -> Optional[ImageInfo]:
    """The WIT ``image-info`` record (componentize-py's dataclass) as an :class:`ImageInfo`."""
    if info is None:
        return None
    p = info.platform
    return ImageInfo(
        platform=Platform(p.os, p.architecture, p.variant),
        config_digest=info.config_digest,
        created=info.created,
        age_seconds=info.age_seconds,
        user=info.user,
        labels={label.key: label.value for label in info.labels},
        exposed_ports=list(info.exposed_ports),
        entrypoint=list(info.entrypoint),
        cmd=list(info.cmd),
        env_names=list(info.env_names),
        layer_count=info.layer_count,
        layers=[Layer(layer.digest, layer.compressed_size, layer.uncompressed_size)
                for layer in info.layers],
        compressed_size=info.compressed_size,
        uncompressed_size=info.uncompressed_size,
        truncated=list(info.truncated),
    )


def _die(error: BaseException) -> None:
    """Traps the call with the message of an exception that escaped the flavor:
    the traceback goes to stderr with its last line (``ValueError: ...``) last,
    then the call aborts (abort() is `unreachable` in WASI). componentize-py
    itself would only print that *an* exception was raised; the host shows the
    guest's last stderr line, bounded and escaped, with the trap."""
    import os
    import sys

    try:
        try:
            import traceback

            lines = traceback.format_exception(type(error), error, error.__traceback__, limit=8)
            sys.stderr.write("".join(lines[:-1])[-8192:])
        except BaseException:  # noqa: BLE001 - the last line matters more
            pass
        last = f"{type(error).__name__}: {error}".replace("\n", " ")
        sys.stderr.write(f"uncaught {last[:1024]}\n")
        sys.stderr.flush()
    finally:
        os.abort()


# --- config parsing ----------------------------------------------------------


def json_kind(value: Any) -> str:
    """A short name for the kind of a JSON value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def parse_config(config: str) -> Dict[str, Any]:
    """Parses config text as a JSON object, or raises :class:`Invalid` saying why not."""
    try:
        value = json.loads(config)
    except ValueError as e:
        raise Invalid([Issue("", f"config is not valid JSON: {e}")]) from None
    if not isinstance(value, dict):
        raise Invalid([Issue("", f"config must be a JSON object, got {json_kind(value)}")])
    return value


def with_example(field: str, problem: str, example: str) -> str:
    """``problem``, followed by a valid example of ``field``, in ZenML's wording."""
    what = {"uri": "URI", "": "config"}.get(field, field)
    return f"{problem.rstrip('.')}. An example of a valid {what} is: `{example}`"


def normalize_uri(uri: str) -> str:
    """Normalises a registry URI the way the host does: surrounding whitespace and trailing
    ``/`` removed, the domain lowercased, ``index.docker.io`` written as ``docker.io``."""
    uri = uri.strip().rstrip("/")
    if "://" in uri:
        return uri
    domain, slash, rest = uri.partition("/")
    domain = domain.lower()
    if domain == "index.docker.io":
        domain = "docker.io"
    return domain + slash + rest


class RegistryUri:
    """A registry URI split into its domain (host with optional port) and path segments."""

    def __init__(self, uri: str):
        parts = uri.split("/")
        self.uri = uri
        self.domain = parts[0]
        self.segments = parts[1:]

    def _split_port(self):
        start = max(self.domain.rfind("]"), 0)
        i = self.domain.rfind(":", start)
        if i < 0:
            return self.domain, None
        return self.domain[:i], self.domain[i + 1:]

    @property
    def host(self) -> str:
        """The domain without its port."""
        return self._split_port()[0]

    @property
    def port(self) -> Optional[str]:
        """The port, when the domain has one."""
        return self._split_port()[1]

    @property
    def path(self) -> str:
        """The path after the domain, segments joined by ``/``."""
        return "/".join(self.segments)


def _alnum(c: str) -> bool:
    return ("a" <= c <= "z") or ("0" <= c <= "9")


def is_path_component(s: str) -> bool:
    """Whether ``s`` is a path component of the Docker reference grammar."""
    if not s or not _alnum(s[0]) or not _alnum(s[-1]):
        return False
    i, n = 0, len(s)
    while i < n:
        if _alnum(s[i]):
            i += 1
            continue
        start = i
        if s[i] == ".":
            i += 1
        elif s[i] == "_":
            i += 1
            if i < n and s[i] == "_":
                i += 1
        elif s[i] == "-":
            while i < n and s[i] == "-":
                i += 1
        else:
            return False
        if i == start or i >= n or not _alnum(s[i]):
            return False
    return True


def is_repository_path(s: str) -> bool:
    """One or more path components separated by ``/``, at most ``MAX_PATH_LEN`` characters."""
    return bool(s) and len(s) <= MAX_PATH_LEN and all(is_path_component(p) for p in s.split("/"))


def is_dns_label(s: str) -> bool:
    """1 to 63 lowercase letters, digits and ``-``, neither starting nor ending with ``-``."""
    return (
        0 < len(s) <= 63
        and not s.startswith("-")
        and not s.endswith("-")
        and all(_alnum(c) or c == "-" for c in s)
    )


def expect_segments(field: str, uri: RegistryUri, lo: int, hi: int, shape: str,
                    example: str, issues: List[Issue]) -> bool:
    """Records an issue unless ``uri`` has ``lo`` to ``hi`` path segments."""
    n = len(uri.segments)
    if lo <= n <= hi:
        return True
    if n == 0:
        found = "has no path"
    elif n == 1:
        found = f"has 1 path segment (`{uri.path}`)"
    else:
        found = f"has {n} path segments (`{uri.path}`)"
    issues.append(Issue.with_example(
        field, f"`{field}` `{uri.uri}` must have {shape}, but {found}", example))
    return False


def check_segments(field: str, uri: RegistryUri, skip: int, example: str,
                   issues: List[Issue], rule: Callable[[str], Optional[str]]) -> bool:
    """Records an issue for every segment after the first ``skip`` that ``rule`` refuses
    (``rule`` returns the problem, or ``None``), then one if the path is too long."""
    ok = True
    for segment in uri.segments[skip:]:
        if not segment:
            problem = f"`{field}` `{uri.uri}` has an empty path segment (`//`)"
        else:
            refusal = rule(segment)
            if refusal is None:
                continue
            problem = f"path segment `{segment}` of `{field}` `{uri.uri}` {refusal}"
        ok = False
        issues.append(Issue.with_example(field, problem, example))
    if ok and len(uri.path) > MAX_PATH_LEN:
        ok = False
        issues.append(Issue.with_example(
            field, f"the path of `{field}` is longer than {MAX_PATH_LEN} characters", example))
    return ok


def path_component(segment: str) -> Optional[str]:
    """:func:`is_path_component` as a rule for :func:`check_segments`."""
    if is_path_component(segment):
        return None
    return f"is not valid in an image name: use {PATH_COMPONENT_RULE}"


def check_path_components(field: str, uri: RegistryUri, example: str, issues: List[Issue]) -> bool:
    """Records an issue for every segment that is not a path component."""
    return check_segments(field, uri, 0, example, issues, path_component)


def _optional_str(config: Dict[str, Any], field: str, example: str, issues: List[Issue]):
    value = config.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    issues.append(Issue(
        field, f"`{field}` must be a string, got {json_kind(value)}; e.g. \"{example}\""))
    return None


class ConfigCheck:
    """A config being validated: the parsed object and every issue found so far."""

    def __init__(self, config: str, allowed):
        self.map = parse_config(config)
        self.issues: List[Issue] = []
        # Sorted, like the Rust kit (a sorted map), so issues come in one order.
        for key in sorted(self.map):
            if key not in allowed:
                self.issues.append(Issue(
                    key, f"unknown field `{key}`; this flavor accepts: {', '.join(allowed)}"))

    def uri(self, example: str) -> Optional[RegistryUri]:
        """Reads the required ``uri``, normalises it and writes it back, and checks what
        every registry URI must satisfy; returns it split, or ``None`` with an issue."""
        raw = self.map.get("uri")
        if raw is None:
            self.issues.append(Issue("uri", f"`uri` is required, e.g. \"{example}\""))
            return None
        if not isinstance(raw, str):
            self.issues.append(Issue(
                "uri", f"`uri` must be a string, got {json_kind(raw)}; e.g. \"{example}\""))
            return None
        if not raw.strip():
            self.issues.append(Issue("uri", f"`uri` must not be empty, e.g. \"{example}\""))
            return None
        uri = normalize_uri(raw)
        if "://" in uri:
            scheme = uri.split("://", 1)[0]
            self.issue("uri", f"`uri` `{uri}` must not include a scheme (`{scheme}://`)", example)
            return None
        if any(c.isspace() for c in uri):
            self.issue("uri", f"`uri` `{uri}` must not contain whitespace", example)
            return None
        parsed = RegistryUri(uri)
        if not parsed.domain:
            self.issue("uri", f"`uri` `{uri}` has no registry domain", example)
            return None
        host = parsed.host
        if not host.startswith("["):
            if len(host) > MAX_HOST_LEN:
                self.issue("uri", f"the registry host of `uri` is {len(host)} characters long; "
                           f"a DNS name has at most {MAX_HOST_LEN}", example)
                return None
            for label in host.split("."):
                if len(label) > MAX_LABEL_LEN:
                    self.issue("uri", f"the label `{label}` of the registry host is {len(label)} "
                               f"characters long; a DNS label has at most {MAX_LABEL_LEN}", example)
                    return None
        self.map["uri"] = uri
        return parsed

    def optional_str(self, field: str, example: str) -> Optional[str]:
        """Reads an optional string field (``null`` counts as absent)."""
        return _optional_str(self.map, field, example, self.issues)

    def default_repository(self, uri: Optional[RegistryUri]) -> Optional[str]:
        """Checks ZenML's optional ``default_repository``."""
        repository = self.optional_str("default_repository", REPOSITORY_EXAMPLE)
        if repository is None:
            return None
        if not is_repository_path(repository):
            self.issue("default_repository",
                       f"`default_repository` `{repository}` is not a valid repository name: use "
                       f"{PATH_COMPONENT_RULE}, separated by `/`", REPOSITORY_EXAMPLE)
            return None
        prefix = uri.path if uri is not None else ""
        total = len(repository) if not prefix else len(prefix) + 1 + len(repository)
        if total > MAX_PATH_LEN:
            self.issue("default_repository",
                       f"`default_repository` appended to the path of `uri` (`{prefix}/...`) makes "
                       f"an image path of {total} characters; Docker allows at most {MAX_PATH_LEN}",
                       REPOSITORY_EXAMPLE)
            return None
        return repository

    def issue(self, field: str, problem: str, example: str) -> None:
        """Records an issue on ``field`` stating ``problem`` and showing ``example``."""
        self.issues.append(Issue.with_example(field, problem, example))

    def set(self, field: str, value: Any) -> None:
        """Sets a field of the normalised config."""
        self.map[field] = value

    def finish(self) -> Dict[str, Any]:
        """The normalised config, or raises :class:`Invalid` with every issue."""
        if self.issues:
            raise Invalid(self.issues)
        return self.map


def validate_uri_config(config: str, example: str,
                        check: Callable[[RegistryUri, List[Issue]], None]) -> Dict[str, Any]:
    """The whole ``validate-config`` of a flavor with ZenML's base fields: parse, reject
    unknown fields, normalise the URI, run ``check`` (the flavor's own rules) on it."""
    cfg = ConfigCheck(config, BASE_FIELDS)
    uri = cfg.uri(example)
    if uri is not None:
        check(uri, cfg.issues)
    cfg.default_repository(uri)
    return cfg.finish()


def approve_push(host: Host, flavor: str, image: Image,
                 info: Optional[ImageInfo] = None) -> Approve:
    """The ``prepare-image-push`` of a flavor with nothing to check."""
    host.log("debug", f"{flavor}: nothing to check before pushing `{image.name}`")
    return Approve([])


def config_schema(title: str, uri_description: str, uri_examples: List[str],
                  extra: Optional[Dict[str, Any]] = None) -> str:
    """The JSON Schema (draft 2020-12) of a config with ``uri``, ``default_repository`` and
    ``extra`` optional properties, no others."""
    properties: Dict[str, Any] = {
        "uri": {"type": "string", "description": uri_description, "examples": list(uri_examples)},
        "default_repository": {
            "type": "string",
            "description": "Repository to push images to when none is given (ZenML's "
                           "`default_repository`): lowercase path components separated by `/`, "
                           "appended to `uri`.",
            "examples": [REPOSITORY_EXAMPLE],
        },
    }
    properties.update(extra or {})
    return json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "required": ["uri"],
        "properties": properties,
    }, separators=(",", ":"))
