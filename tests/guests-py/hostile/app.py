"""A Python flavor that misbehaves on request, for tests/tests/all/languages.rs.

`validate-config` reads `{"mode": "..."}` and does what the mode says; the
same modes as the Rust hostile guest (tests/guests/hostile) where Python can
express them.
"""

import json
import sys

import flavorbox_kit as kit

CALLS = [0]


def recurse(n):
    return recurse(n + 1) + 1


def probe():
    """Everything the guest could observe of its environment, as a dict."""
    import os
    import time

    seen = {"env": sorted(os.environ), "args": list(sys.argv[1:])}
    try:
        os.listdir("/")
        seen["read_dir_root"] = True
    except OSError as e:
        seen["read_dir_root"] = False
        seen["read_dir_root_error"] = str(e)
    try:
        with open("/etc/passwd") as f:
            f.read()
        seen["read_etc_passwd"] = True
    except OSError:
        seen["read_etc_passwd"] = False
    try:
        with open("/tmp/flavorbox-escape", "w") as f:
            f.write("x")
        seen["write_file"] = True
    except OSError:
        seen["write_file"] = False
    # CPython for WASI has no `socket` module: importing it fails too.
    try:
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", 22))
        seen["tcp_connect"] = True
    except Exception as e:  # noqa: BLE001 - any failure is a refusal
        seen["tcp_connect"] = False
        seen["tcp_error"] = type(e).__name__
    try:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", 9, timeout=1)
        conn.request("GET", "/")
        seen["http"] = "response %d" % conn.getresponse().status
    except Exception as e:  # noqa: BLE001
        seen["http"] = "refused: " + type(e).__name__
    seen["wall_clock_secs"] = int(time.time())
    return seen


class Hostile(kit.Flavor):
    def metadata(self):
        return kit.Metadata(
            name="hostile-py",
            display_name="Hostile Python test flavor",
            description="Misbehaves on request",
            docs_url="https://example.invalid/hostile",
            config_schema='{"type":"object"}',
            capabilities=[kit.REPOSITORY_EXISTS],
        )

    def validate_config(self, host, config):
        CALLS[0] += 1
        mode = json.loads(config).get("mode", "ok")
        if mode == "ok":
            return config
        if mode == "calls":
            return {"calls": CALLS[0]}
        if mode == "loop":
            x = 0
            while True:
                x += 1
        if mode == "alloc":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if mode == "recurse":
            # Past Python's own guard: the interpreter's stack, not a RecursionError.
            sys.setrecursionlimit(10_000_000)
            return {"n": recurse(0)}
        if mode == "raise":
            raise ValueError("hostile python raises on purpose \x1b[2J\nerror: forged line " + "x" * 100_000)
        if mode == "big-output":
            return {"pad": "x" * (4 << 20)}
        if mode == "probe":
            try:
                return probe()
            except BaseException as e:  # noqa: BLE001
                return {"probe_failed": repr(e)}
        if mode == "print":
            print("hello from stdout")
            print("hello from stderr", file=sys.stderr)
            return config
        if mode == "lookup":
            try:
                return {"exists": host.repository_exists("team/app")}
            except kit.LookupFailed as e:
                raise kit.Invalid([kit.Issue("lookup", str(e))])
        raise kit.Invalid([kit.Issue("mode", f"unknown mode `{mode}`")])

    def prepare_image_push(self, host, config, image):
        return kit.Approve([])


Flavor = kit.export(Hostile)
