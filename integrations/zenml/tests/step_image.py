"""A parent image for pipeline steps, made without pulling anything.

Test detail: no image can be pulled on the machines the tests run on, so the
step image's parent is this Python (the running interpreter, its standard
library and this virtualenv's packages: ZenML, and `flavorbox_zenml` when
installed in `extra_site`), `/bin/sh` and `chmod` (ZenML's generated
Dockerfile runs `chmod -R a+rw .`), and the shared libraries all of those
load, laid out at the paths they have on this machine and `docker import`ed.
A real project would use ZenML's own parent image instead.

    python step_image.py IMAGE_NAME [EXTRA_SITE_DIR]
"""

import io
import os
import re
import subprocess
import sys
import sysconfig
import tarfile

# Parts of the standard library and site-packages no step uses.
_SKIPPED = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pip",
}
_CONFIG_DIR = re.compile(r"^config-\d+\.\d+")
# Where the interpreter is, in the image as on this machine.
_BIN_DIR = os.path.join(sys.base_prefix, "bin")


def _elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _needed_libraries(binaries):
    """The shared libraries `ldd` resolves for each binary, and the loader."""
    found = set()
    for binary in binaries:
        result = subprocess.run(
            ["ldd", binary], capture_output=True, text=True, check=False
        )
        for line in result.stdout.splitlines():
            line = line.strip()
            if "=>" in line:
                target = line.split("=>", 1)[1].strip().split(" ", 1)[0]
                if target.startswith("/"):
                    found.add(target)
            elif line.startswith("/"):
                found.add(line.split(" ", 1)[0])
    return found


def _tree(root, skip_top_level=()):
    """Every file and symlink under `root`, skipping some top-level names."""
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [
                d
                for d in dirnames
                if d not in skip_top_level and not _CONFIG_DIR.match(d)
            ]
        for name in filenames:
            yield os.path.join(dirpath, name)


def build_rootfs_tar(out, extra_site=None):
    """Writes the root filesystem as a tar to the file object `out`."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    interpreter = os.path.realpath(os.path.join(_BIN_DIR, version))
    stdlib = sysconfig.get_paths()["stdlib"]
    base_site = os.path.join(stdlib, "site-packages")
    venv_site = sysconfig.get_paths()["purelib"]

    # (path in the image, path on this machine)
    files = [(interpreter, interpreter)]
    for path in _tree(stdlib, _SKIPPED | {"site-packages"}):
        files.append((path, path))
    for site in filter(None, [venv_site, extra_site]):
        for path in _tree(site, _SKIPPED):
            files.append((os.path.join(base_site, os.path.relpath(path, site)), path))
    for tool in ("/bin/sh", "/bin/chmod"):
        files.append((tool, os.path.realpath(tool)))

    elves = [source for _, source in files if _elf(source) and not os.path.islink(source)]
    for library in sorted(_needed_libraries(elves)):
        files.append((library, os.path.realpath(library)))

    with tarfile.open(fileobj=out, mode="w|") as tar:
        seen_dirs = set()

        def add_dirs(path):
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)

        written = set()
        for image_path, source in files:
            if image_path in written:
                continue
            written.add(image_path)
            add_dirs(image_path)
            info = tar.gettarinfo(source, arcname=image_path.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isreg():
                with open(source, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        # `python` and `python3` next to the interpreter, a root user and /tmp.
        for alias in ("python", "python3"):
            link = os.path.join(_BIN_DIR, alias)
            info = tarfile.TarInfo(link.lstrip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = os.path.basename(interpreter)
            if link not in written:
                add_dirs(link)
                tar.addfile(info)
        for name, data in (
            ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", b"root:x:0:\n"),
        ):
            add_dirs("/" + name)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("tmp")
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777
        tar.addfile(info)


def import_image(name, extra_site=None):
    """Builds the root filesystem and `docker import`s it as `name`."""
    importer = subprocess.Popen(
        [
            "docker",
            "import",
            "--change",
            f"ENV PATH={_BIN_DIR}:/usr/bin:/bin",
            "--change",
            "ENV PYTHONDONTWRITEBYTECODE=1",
            "-",
            name,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        build_rootfs_tar(importer.stdin, extra_site)
        importer.stdin.close()
    except BrokenPipeError:
        pass  # docker import stopped reading: its error says why
    importer.stdin = None
    stdout, stderr = importer.communicate()
    if importer.returncode != 0:
        raise RuntimeError(f"docker import failed: {stderr.decode()}")
    return stdout.decode().strip()


if __name__ == "__main__":
    print(import_image(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
