"""Native tests of the kit's WIT adapter (`export`): what a flavor gets
from the host and what the host gets back, with the bindings componentize-py
generates replaced by stand-ins of the same shape. Run in this directory:
`python3 -m unittest test_flavorbox_kit` (tests/tests/all/languages.rs does).
"""

import enum
import sys
import types
import unittest
from dataclasses import dataclass
from typing import List, Optional

import flavorbox_kit as kit


class Err(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


def bindings(with_image_info: bool = True) -> types.SimpleNamespace:
    """Stand-ins for `wit_world.exports.flavor` and `wit_world.imports.host` of WIT 0.2
    (0.1 when not `with_image_info`), as componentize-py generates them."""
    names = ["REPOSITORY_EXISTS"] + (["IMAGE_INFO"] if with_image_info else [])
    flavor = types.ModuleType("wit_world.exports.flavor")
    flavor.Capability = enum.Enum("Capability", {n: i for i, n in enumerate(names)})

    @dataclass
    class FlavorMetadata:
        name: str
        display_name: str
        description: str
        docs_url: str
        logo_url: str
        config_schema: str
        capabilities: list

    @dataclass
    class PushDecision_Approve:  # noqa: N801 - the generated name
        value: List[str]

    @dataclass
    class PushDecision_Deny:  # noqa: N801 - the generated name
        value: str

    @dataclass
    class ConfigIssue:
        field: str
        message: str

    flavor.FlavorMetadata = FlavorMetadata
    flavor.PushDecision_Approve = PushDecision_Approve
    flavor.PushDecision_Deny = PushDecision_Deny
    flavor.ConfigIssue = ConfigIssue
    host = types.ModuleType("wit_world.imports.host")
    host.LogLevel = enum.Enum("LogLevel", {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3,
                                           "ERROR": 4})
    host.logs = []
    host.log = lambda level, message: host.logs.append((level.name, message))
    host.repository_exists = lambda repository: True
    package = types.ModuleType("wit_world")
    exports = types.ModuleType("wit_world.exports")
    imports = types.ModuleType("wit_world.imports")
    exports.flavor, imports.host = flavor, host
    package.exports, package.imports = exports, imports
    types_module = types.ModuleType("componentize_py_types")
    types_module.Err = Err
    sys.modules.update({
        "wit_world": package, "wit_world.exports": exports, "wit_world.imports": imports,
        "wit_world.exports.flavor": flavor, "wit_world.imports.host": host,
        "componentize_py_types": types_module,
    })
    return types.SimpleNamespace(flavor=flavor, host=host)


@dataclass
class WitPlatform:
    os: str
    architecture: str
    variant: Optional[str]


@dataclass
class WitLayer:
    digest: str
    compressed_size: Optional[int]
    uncompressed_size: Optional[int]


@dataclass
class WitLabel:
    key: str
    value: str


@dataclass
class WitImageInfo:
    platform: WitPlatform
    config_digest: str
    created: Optional[str]
    age_seconds: Optional[int]
    user: str
    labels: List[WitLabel]
    exposed_ports: List[str]
    entrypoint: List[str]
    cmd: List[str]
    env_names: List[str]
    layer_count: int
    layers: List[WitLayer]
    compressed_size: Optional[int]
    uncompressed_size: Optional[int]
    truncated: List[str]


@dataclass
class WitImage:
    domain: str = "registry.example.com"
    path: str = "ml/app"
    tag: Optional[str] = "1"
    digest: Optional[str] = None
    name: str = "registry.example.com/ml/app"


WIT_INFO = WitImageInfo(
    platform=WitPlatform("linux", "arm64", "v8"),
    config_digest="sha256:" + "c" * 64,
    created="2026-01-02T03:04:05Z",
    age_seconds=86_400,
    user="app",
    labels=[WitLabel("a", "1"), WitLabel("org.opencontainers.image.source", "https://x")],
    exposed_ports=["8080/tcp"],
    entrypoint=["/bin/app"],
    cmd=["--serve"],
    env_names=["PATH", "TOKEN"],
    layer_count=200,
    layers=[WitLayer("sha256:" + "1" * 64, None, 5_000_000_000)],
    compressed_size=None,
    uncompressed_size=5_000_000_000,
    truncated=["layers"],
)

KIT_INFO = kit.ImageInfo(
    platform=kit.Platform("linux", "arm64", "v8"),
    config_digest="sha256:" + "c" * 64,
    created="2026-01-02T03:04:05Z",
    age_seconds=86_400,
    user="app",
    labels={"a": "1", "org.opencontainers.image.source": "https://x"},
    exposed_ports=["8080/tcp"],
    entrypoint=["/bin/app"],
    cmd=["--serve"],
    env_names=["PATH", "TOKEN"],
    layer_count=200,
    layers=[kit.Layer("sha256:" + "1" * 64, None, 5_000_000_000)],
    compressed_size=None,
    uncompressed_size=5_000_000_000,
    truncated=["layers"],
)


def flavor(capabilities, push):
    """A flavor class asking for `capabilities` whose `prepare_image_push` is `push`."""

    class F(kit.Flavor):
        def metadata(self):
            return kit.Metadata("f", "F", "d", "https://d", "{}", capabilities=list(capabilities))

        def validate_config(self, host, config):
            return config

    F.prepare_image_push = push
    return F


class AdapterTest(unittest.TestCase):
    def setUp(self):
        self.saved_die = kit._die

        def die(error):
            raise error

        kit._die = die  # the real one aborts the process, as a trap

    def tearDown(self):
        kit._die = self.saved_die
        for name in list(sys.modules):
            if name.startswith("wit_world") or name == "componentize_py_types":
                del sys.modules[name]

    def test_the_info_reaches_a_flavor_that_takes_it_as_plain_python(self):
        w = bindings()
        seen = []

        def push(self, host, config, image, info):
            seen.append((image, info))
            return kit.Deny("no") if info is None else kit.Approve([str(info.platform)])

        exported = kit.export(flavor([kit.IMAGE_INFO], push))()
        self.assertEqual(exported.metadata().capabilities, [w.flavor.Capability.IMAGE_INFO])
        decision = exported.prepare_image_push("{}", WitImage(), WIT_INFO)
        self.assertEqual(decision, w.flavor.PushDecision_Approve(["linux/arm64/v8"]))
        image, info = seen[0]
        self.assertEqual(image, kit.Image("registry.example.com", "ml/app", "1", None,
                                          "registry.example.com/ml/app"))
        self.assertEqual(info, KIT_INFO)
        self.assertEqual(info.labels["org.opencontainers.image.source"], "https://x")
        self.assertEqual(info.size, 5_000_000_000)
        # A check by name alone: `info` is None.
        self.assertEqual(exported.prepare_image_push("{}", WitImage(), None),
                         w.flavor.PushDecision_Deny("no"))

    def test_info_as_a_keyword_or_a_default_is_passed_too(self):
        bindings()
        seen = []

        def keyword(self, host, config, image, *, info):
            seen.append(info)
            return kit.Approve([])

        def default(self, host, config, image, info=None):
            seen.append(info)
            return kit.Approve([])

        for push in (keyword, default):
            kit.export(flavor([kit.IMAGE_INFO], push))().prepare_image_push(
                "{}", WitImage(), WIT_INFO)
        self.assertEqual(seen, [KIT_INFO, KIT_INFO])

    def test_a_flavor_written_for_0_1_is_called_without_info(self):
        w = bindings()

        def push(self, host, config, image):
            return kit.Approve([image.name])

        exported = kit.export(flavor([kit.REPOSITORY_EXISTS], push))()
        self.assertEqual(exported.metadata().capabilities,
                         [w.flavor.Capability.REPOSITORY_EXISTS])
        self.assertEqual(exported.prepare_image_push("{}", WitImage(), None),
                         w.flavor.PushDecision_Approve(["registry.example.com/ml/app"]))
        # ... and against the 0.1 bindings, which pass no `info` at all.
        w = bindings(with_image_info=False)
        exported = kit.export(flavor([], push))()
        self.assertEqual(exported.prepare_image_push("{}", WitImage()),
                         w.flavor.PushDecision_Approve(["registry.example.com/ml/app"]))

    def test_capability_mistakes_fail_the_metadata_with_the_fix(self):
        def old(self, host, config, image):
            return kit.Approve([])

        def new(self, host, config, image, info):
            return kit.Approve([])

        bindings()
        for caps, push, words in [
            (["image_info"], new, "unknown capability 'image_info'"),
            ([kit.IMAGE_INFO], old, "has no `info` parameter"),
        ]:
            with self.assertRaises(ValueError) as caught:
                kit.export(flavor(caps, push))().metadata()
            self.assertIn(words, str(caught.exception))
        bindings(with_image_info=False)
        with self.assertRaises(ValueError) as caught:
            kit.export(flavor([kit.IMAGE_INFO], new))().metadata()
        self.assertIn("wit/v0.2", str(caught.exception))

    def test_image_info_by_hand_fills_in_what_a_test_leaves_out(self):
        info = kit.ImageInfo(platform=kit.Platform("linux", "amd64"),
                             layers=[kit.Layer("sha256:a", 10, 20)], compressed_size=10,
                             uncompressed_size=20)
        self.assertEqual(info.layer_count, 1)
        self.assertEqual(info.labels, {})
        self.assertEqual(info.size, 10)
        self.assertEqual(str(info.platform), "linux/amd64")
        self.assertIsNone(kit.ImageInfo(platform=kit.Platform("linux", "amd64")).size)


if __name__ == "__main__":
    unittest.main()
