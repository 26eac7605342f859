"""Native unit tests of the acme flavor's logic: `python3 -m unittest` in
this directory (with flavorbox_kit.py on the path)."""

import unittest

import flavorbox_kit as kit
from app import Acme


class AcmeTest(unittest.TestCase):
    def test_fills_in_the_team(self):
        config = Acme().validate_config(kit.NoHost(), '{"uri":"registry.acme.internal/ml"}')
        self.assertEqual(config, {"uri": "registry.acme.internal/ml", "team": "ml"})

    def test_refuses_another_registry_and_a_wrong_team(self):
        with self.assertRaises(kit.Invalid) as caught:
            Acme().validate_config(kit.NoHost(), '{"uri":"registry.example.com/ml","team":"x"}')
        self.assertEqual([i.field for i in caught.exception.issues], ["uri"])
        with self.assertRaises(kit.Invalid) as caught:
            Acme().validate_config(kit.NoHost(), '{"uri":"registry.acme.internal/ml","team":"cv"}')
        self.assertEqual([i.field for i in caught.exception.issues], ["team"])

    def test_denies_latest(self):
        host = kit.FakeHost()
        image = kit.Image("registry.acme.internal", "ml/trainer", "latest", None,
                          "registry.acme.internal/ml/trainer")
        decision = Acme().prepare_image_push(host, "{}", image)
        self.assertIsInstance(decision, kit.Deny)
        self.assertIn("`latest`", decision.reason)
        image.tag = "1"
        self.assertEqual(Acme().prepare_image_push(host, "{}", image), kit.Approve([]))


if __name__ == "__main__":
    unittest.main()
