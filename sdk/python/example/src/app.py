"""The `acme` flavor in Python: ACME's internal registry, one repository
namespace per team, `registry.acme.internal/<team>`. Pushes of a `latest`
tag are denied. The same flavor as the Rust example of docs/writing-a-flavor.md.
"""

import json

import flavorbox_kit as kit

DOMAIN = "registry.acme.internal"
EXAMPLE = "registry.acme.internal/ml"

# JSON Schema (draft 2020-12) of the config, shown by `flavorbox flavor describe`.
SCHEMA = json.dumps({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ACME internal registry",
    "type": "object",
    "additionalProperties": False,
    "required": ["uri"],
    "properties": {
        "uri": {
            "type": "string",
            "description": "`registry.acme.internal/<team>`",
            "examples": [EXAMPLE],
        },
        "team": {
            "type": "string",
            "description": "The team that owns the images. Derived from `uri`; when given, it must match.",
            "examples": ["ml"],
        },
    },
})


def is_team(s: str) -> bool:
    """A team name: 2 to 32 lowercase letters, digits and `-`, starting with a letter."""
    return (
        2 <= len(s) <= 32
        and "a" <= s[0] <= "z"
        and all("a" <= c <= "z" or "0" <= c <= "9" or c == "-" for c in s)
    )


def issue(field: str, problem: str, example: str) -> kit.Issue:
    """A config issue whose message ends with a valid example."""
    return kit.Issue(field, f"{problem}. An example of a valid value is: `{example}`")


class Acme(kit.Flavor):
    def metadata(self) -> kit.Metadata:
        return kit.Metadata(
            name="acme",
            display_name="ACME internal registry",
            description="ACME's internal registry: every team pushes under its own namespace, "
            "`registry.acme.internal/<team>`, and `latest` tags are not accepted.",
            docs_url="https://wiki.acme.internal/registry",
            config_schema=SCHEMA,
            # This flavor needs nothing from the host beyond `log`.
            capabilities=[],
        )

    def validate_config(self, host: kit.Host, config: str):
        try:
            fields = json.loads(config)
        except ValueError as e:
            fields = e
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise kit.Invalid([issue("", "the config must be a JSON object of strings",
                                     '{"uri":"registry.acme.internal/ml"}')])
        issues = []
        for key in fields:
            if key not in ("uri", "team"):
                issues.append(issue(
                    key, f"unknown field `{key}`; this flavor accepts `uri` and `team`", EXAMPLE))
        # The host has already checked that `uri` is there and well formed.
        uri = fields.get("uri", "")
        team = None
        if uri.startswith(DOMAIN + "/"):
            candidate = uri[len(DOMAIN) + 1:]
            if is_team(candidate):
                team = candidate
            else:
                issues.append(issue(
                    "uri", f"`{candidate}` is not a team: use 2 to 32 lowercase letters, digits "
                    "and `-`, starting with a letter", EXAMPLE))
        else:
            issues.append(issue(
                "uri", f"`{uri}` is not on the ACME registry: use `{DOMAIN}/<team>`", EXAMPLE))
        given = fields.get("team")
        if given is not None and team is not None and given != team:
            issues.append(issue(
                "team", f"`team` `{given}` does not match the team of `uri`, `{team}`", team))
        if issues or team is None:
            raise kit.Invalid(issues)
        host.log("debug", f"acme: config for team `{team}` is valid")
        # The normalised config: the same `uri`, with `team` filled in.
        return {"uri": uri, "team": team}

    def prepare_image_push(self, host: kit.Host, config: str, image: kit.Image,
                           info: kit.ImageInfo | None = None):
        host.log("info", f"acme: checking the push of `{image.name}`")
        # The host fills in `latest` when a reference has no tag.
        if image.tag == "latest":
            return kit.Deny(
                "ACME does not accept `latest` tags: tag the image with a version, "
                f"e.g. `{image.name}:1.0.0`")
        # `info` is what the host read from the image (platform, labels, sizes,
        # ...), given only to a flavor that asks for it in its metadata
        # (`capabilities=[kit.IMAGE_INFO]`); here it is always None. A rule on it:
        #   if info is not None and str(info.platform) != "linux/amd64":
        #       return kit.Deny(f"ACME runs linux/amd64 images, not {info.platform}")
        return kit.Approve([])


# componentize-py exports the class named `Flavor` of this module.
Flavor = kit.export(Acme)
