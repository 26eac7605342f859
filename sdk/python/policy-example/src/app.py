"""The `acme-policy` flavor in Python: any registry, with ACME's image policy
on every push. It asks the host for what it read from the image
(`kit.IMAGE_INFO`) and denies an image without an
`org.opencontainers.image.source` label, one not built for linux/amd64, or
one larger than the config's `max_size_mib` (512 by default).
"""

import json

import flavorbox_kit as kit

#: The label every image must carry: where its source lives.
SOURCE_LABEL = "org.opencontainers.image.source"
#: The one platform ACME runs.
PLATFORM = "linux/amd64"
DEFAULT_MAX_SIZE_MIB = 512
MAX_SIZE_MIB_LIMIT = 1 << 20
MIB = 1024 * 1024

# JSON Schema (draft 2020-12) of the config, shown by `flavorbox flavor describe`.
SCHEMA = json.dumps({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ACME image policy",
    "type": "object",
    "additionalProperties": False,
    "required": ["uri"],
    "properties": {
        "uri": {"type": "string", "description": "The registry.",
                "examples": ["registry.acme.internal/ml"]},
        "max_size_mib": {
            "type": "integer", "minimum": 1, "maximum": MAX_SIZE_MIB_LIMIT,
            "default": DEFAULT_MAX_SIZE_MIB,
            "description": "The largest image this registry accepts, in MiB.",
        },
    },
})


def policy_problems(info: kit.ImageInfo, max_size_mib: int) -> list:
    """Every rule `info` breaks, in words for the user."""
    problems = []
    if not info.labels.get(SOURCE_LABEL, "").strip():
        # The host passes at most 64 labels and says when it cut some.
        seen = " among the labels the host read" if "labels" in info.truncated else ""
        problems.append(
            f"it has no `{SOURCE_LABEL}` label{seen} (add "
            f"`LABEL {SOURCE_LABEL}=<URL of its source>` to its Dockerfile)")
    if str(info.platform) != PLATFORM:
        problems.append(f"it is built for {info.platform}, not {PLATFORM}")
    # Compressed when the host knows it (what the registry stores), else uncompressed.
    if info.size is None:
        problems.append("the host could not measure its size")
    elif info.size > max_size_mib * MIB:
        problems.append(f"it is {info.size / MIB:.1f} MiB, more than the {max_size_mib} MiB "
                        "this registry accepts")
    return problems


class AcmePolicy(kit.Flavor):
    def metadata(self) -> kit.Metadata:
        return kit.Metadata(
            name="acme-policy",
            display_name="ACME image policy",
            description="Any registry, with ACME's image policy: an "
            "`org.opencontainers.image.source` label, linux/amd64, and a size cap.",
            docs_url="https://wiki.acme.internal/registry/policy",
            config_schema=SCHEMA,
            # Without this the host never reads the image: `info` is None.
            capabilities=[kit.IMAGE_INFO],
        )

    def validate_config(self, host: kit.Host, config: str):
        cfg = kit.ConfigCheck(config, ("uri", "max_size_mib"))
        # The host has already checked `uri`; the size cap is ours.
        cfg.uri("registry.acme.internal/ml")
        size = cfg.map.get("max_size_mib", DEFAULT_MAX_SIZE_MIB)
        if isinstance(size, int) and not isinstance(size, bool) and \
                1 <= size <= MAX_SIZE_MIB_LIMIT:
            cfg.set("max_size_mib", size)
        else:
            cfg.issues.append(kit.Issue(
                "max_size_mib", "`max_size_mib` must be a whole number of MiB from 1 to "
                f"{MAX_SIZE_MIB_LIMIT}, e.g. {DEFAULT_MAX_SIZE_MIB}"))
        return cfg.finish()

    def prepare_image_push(self, host: kit.Host, config: str, image: kit.Image,
                           info: kit.ImageInfo | None):
        max_size_mib = json.loads(config).get("max_size_mib", DEFAULT_MAX_SIZE_MIB)
        # None: the host has only the name (a dry run of an image it does not
        # have). The push itself asks again, with the info.
        if info is None:
            return kit.Approve([f"`{image.name}` was checked by name only: its label, platform "
                                "and size are checked when it is pushed"])
        problems = policy_problems(info, max_size_mib)
        if problems:
            return kit.Deny(f"`{image.name}` breaks ACME's image policy: {'; '.join(problems)}")
        host.log("info", f"acme-policy: `{image.name}` meets the image policy")
        return kit.Approve([])


# componentize-py exports the class named `Flavor` of this module.
Flavor = kit.export(AcmePolicy)
