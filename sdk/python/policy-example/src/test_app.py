"""Native unit tests of the acme-policy flavor: `python3 -m unittest` in
this directory (with flavorbox_kit.py on the path)."""

import unittest

import flavorbox_kit as kit
from app import AcmePolicy

IMAGE = kit.Image("registry.acme.internal", "ml/trainer", "1", None,
                  "registry.acme.internal/ml/trainer")
CONFIG = '{"uri":"registry.acme.internal/ml","max_size_mib":512}'


def info(**fields):
    """An image that meets the policy, with `fields` changed."""
    base = dict(platform=kit.Platform("linux", "amd64"),
                labels={"org.opencontainers.image.source": "https://git.acme.internal/ml"},
                uncompressed_size=80 * 1024 * 1024)
    base.update(fields)
    return kit.ImageInfo(**base)


class AcmePolicyTest(unittest.TestCase):
    def push(self, image_info):
        return AcmePolicy().prepare_image_push(kit.FakeHost(), CONFIG, IMAGE, image_info)

    def test_asks_for_the_image_info(self):
        self.assertEqual(AcmePolicy().metadata().capabilities, [kit.IMAGE_INFO])

    def test_fills_in_the_size_cap_and_refuses_a_bad_one(self):
        config = AcmePolicy().validate_config(kit.NoHost(), '{"uri":"registry.acme.internal/ml"}')
        self.assertEqual(config["max_size_mib"], 512)
        for bad in ('0', '"big"', '1.5', 'true'):
            with self.assertRaises(kit.Invalid) as caught:
                AcmePolicy().validate_config(
                    kit.NoHost(), '{"uri":"registry.acme.internal/ml","max_size_mib":%s}' % bad)
            self.assertEqual([i.field for i in caught.exception.issues], ["max_size_mib"])

    def test_approves_an_image_that_meets_the_policy(self):
        self.assertEqual(self.push(info()), kit.Approve([]))

    def test_denies_every_broken_rule_at_once(self):
        decision = self.push(info(labels={}, platform=kit.Platform("linux", "arm64", "v8"),
                                  uncompressed_size=600 * 1024 * 1024))
        self.assertIsInstance(decision, kit.Deny)
        self.assertIn("no `org.opencontainers.image.source` label", decision.reason)
        self.assertIn("built for linux/arm64/v8, not linux/amd64", decision.reason)
        self.assertIn("600.0 MiB, more than the 512 MiB", decision.reason)

    def test_an_unmeasured_or_truncated_image_is_denied(self):
        self.assertIn("could not measure", self.push(info(uncompressed_size=None)).reason)
        reason = self.push(info(labels={"a": "b"}, truncated=["labels"])).reason
        self.assertIn("among the labels the host read", reason)

    def test_a_check_by_name_alone_warns(self):
        decision = self.push(None)
        self.assertIsInstance(decision, kit.Approve)
        self.assertIn("checked by name only", decision.warnings[0])


if __name__ == "__main__":
    unittest.main()
