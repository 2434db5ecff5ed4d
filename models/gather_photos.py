"""Gather the photos the bundled model was trained on, with their licences.

    python models/gather_photos.py DEST      # e.g. ~/photos; about 100 MB of downloads

The photos are not part of this repository: they are taken from packages anyone can
fetch, scikit-image's wheel on PyPI and Debian's wallpaper packages, and copied into
DEST/train and DEST/held_out (photos kept out of training, to judge the model on).
DEST/LICENSES.md lists every photo with its source, author and licence, read from
scikit-image's docstrings and the Debian packages' copyright files (DEP-5).
"""
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

SKIMAGE = "scikit-image==0.26.0"
SKIMAGE_PHOTOS = ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png",
                  "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
                  "rocket.jpg"]  # moon and motorcycle: no licence stated
# Debian package -> photos in it (paths under /usr/share/backgrounds); the packages'
# illustrations and logos are left out: fw should learn from photographs.
DEBIAN_PHOTOS = {
    "mate-backgrounds": ["mate/nature/" + n for n in (
        "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg",
        "GreenMeadow.jpg", "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg",
        "Wood.jpg", "YellowFlower.jpg")] + ["mate/desktop/GreenTraditional.jpg"],
    "lomiri-wallpapers-20.04": ["Kleiber_by_Lukas_Baubkus.jpg",
                                "Infinite-Sea_by_Aury88.jpg"],
}
HELD_OUT = {"chelsea.png", "coffee.png", "rocket.jpg", "LadyBird.jpg"}


def skimage_licence(source, name):
    """The licence sentence of a scikit-image sample, from its loader's docstring."""
    function = {"motorcycle_left": "stereo_motorcycle"}.get(name.split(".")[0],
                                                              name.split(".")[0])
    match = re.search(rf'def {function}\(.*?"""(.*?)"""', source, re.DOTALL)
    text = " ".join(match.group(1).split()) if match else ""
    text = text.replace("Notes -----", "")
    found = re.findall(r"[^.]*(?:copyright|CC0|public domain|licensed)[^.]*\.", text, re.IGNORECASE)
    return " ".join(found).strip() or "see scikit-image's data/_fetchers.py"


def dep5_licence(copyright_text, installed):
    """(copyright, licence) of a file, from a Debian DEP-5 copyright file, whose last
    matching stanza wins; installed is its path under /usr/share/backgrounds."""
    parts = installed.split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    name = parts[-1]

    def matches(pattern):
        if not any(c in os.path.basename(pattern) for c in "*?["):
            return os.path.basename(pattern) == name  # upstream folders differ
        return any(fnmatch.fnmatchcase(s, pattern) for s in suffixes)

    best = ("?", "?")
    for stanza in copyright_text.split("\n\n"):
        files = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nX", re.DOTALL | re.MULTILINE)
        if not files:
            continue
        patterns = files.group(1).split()
        if any(matches(p) for p in patterns):
            holder = re.search(r"^Copyright:(.*?)(?=^\S)", stanza + "\nX", re.DOTALL | re.MULTILINE)
            licence = re.search(r"^License:\s*(\S+)", stanza, re.MULTILINE)
            best = (" ".join(holder.group(1).split()) if holder else "?",
                    licence.group(1) if licence else "?")
    return best


def gather_skimage(tmp, dest, rows):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "--dest", tmp, SKIMAGE], check=True)
    wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("scikit"))
    with zipfile.ZipFile(wheel) as z:
        source = z.read("skimage/data/_fetchers.py").decode()
        for name in SKIMAGE_PHOTOS:
            folder = os.path.join(dest, "held_out" if name in HELD_OUT else "train")
            with open(os.path.join(folder, "skimage_" + name), "wb") as f:
                f.write(z.read("skimage/data/" + name))
            rows.append(("skimage_" + name, SKIMAGE + " (PyPI)", "",
                         skimage_licence(source, name)))


def gather_debian(tmp, dest, rows):
    for package, photos in DEBIAN_PHOTOS.items():
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deb = next(os.path.join(tmp, f) for f in os.listdir(tmp)
                   if f.startswith(package + "_") and f.endswith(".deb"))
        root = os.path.join(tmp, package)
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        with open(os.path.join(root, "usr/share/doc", package, "copyright")) as f:
            copyright_text = f.read()
        for photo in photos:
            name = os.path.basename(photo)
            folder = os.path.join(dest, "held_out" if name in HELD_OUT else "train")
            shutil.copy(os.path.join(root, "usr/share/backgrounds", photo),
                        os.path.join(folder, "debian_" + name))
            holder, licence = dep5_licence(copyright_text, photo)
            rows.append(("debian_" + name, f"Debian package {os.path.basename(deb)}",
                         holder, licence))


def main(dest):
    for sub in ("train", "held_out"):
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gather_skimage(tmp, dest, rows)
        gather_debian(tmp, dest, rows)
    with open(os.path.join(dest, "LICENSES.md"), "w") as f:
        f.write("| photo | source | copyright | licence |\n|---|---|---|---|\n")
        f.writelines("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |\n"
                     for row in rows)
    held = sum(1 for r in rows if r[0].split("_", 1)[1] in HELD_OUT)
    print(f"{len(rows) - held} training photos in {dest}/train, {held} held out in "
          f"{dest}/held_out; licences in {dest}/LICENSES.md")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
