"""The glyph data set: characters rendered from the outlines of Debian's font packages, one class a
character, one sample a face. Vector outlines have true detail at any size, so every resolution is
rendered directly (never upsampled), and the class is the only condition.

    training/glyph_fonts.sh                                   # install the font packages (apt)
    /usr/bin/python3 -m training.glyphs faces                 # list the faces, their split and licenses
    /usr/bin/python3 -m training.glyphs build --resolution 256   # render and cache data/glyphs/r256/
    /usr/bin/python3 -m training.glyphs check --resolution 256   # verify a cache

Classes (CHARS): printable ASCII without the space, the letters of Latin-1 (U+00C0-U+00FF without the
signs U+00D7 and U+00F7) and Latin Extended-A (U+0100-U+017F): 284 characters, named like
"Ï (U+00CF)". Characters that most faces draw the same (JUDGE_GROUPS: 0 and O; 1, I, l and |; Ð and Đ)
stay classes of their own, since many faces tell them apart, and the judge counts any member of a
group as a hit for the others.

Faces: every .ttf/.otf under FONT_DIRS that covers at least MIN_COVERAGE of the characters, skipping
small caps, math, symbol and script faces (EXCLUDE); a face gets a sample for each character it has.
Split by design (CLUSTERS): clones and metric twins of one design (TeX Gyre Termes, Nimbus Roman,
FreeSerif, Liberation Serif, Tinos are all Times) share a cluster, and HELDOUT_CLUSTERS are never
trained on; they are what "real" means in every figure.

Placement at R px (deterministic): the face is set at the integer pixel size that makes its capital
H CAP_HEIGHT * R tall, the baseline lies at row round(BASELINE * R), and the glyph's ink box is centred
horizontally (integer offset). Black ink on white, 8-bit gray, FreeType's anti-aliasing. A glyph whose
ink would leave the image, or that has no ink, is left out (the manifest counts them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from multiprocessing import Pool

import numpy as np

CHARS = ([chr(c) for c in range(0x21, 0x7F)]
         + [chr(c) for c in range(0xC0, 0x100) if c not in (0xD7, 0xF7)]
         + [chr(c) for c in range(0x100, 0x180)])
JUDGE_GROUPS = [("0", "O"), ("1", "I", "l", "|"), ("\u00D0", "\u0110")]
MIN_COVERAGE = 208
MAX_PER_FAMILY = 8         # of a family's faces (weights, widths, optical sizes), this many, evenly spaced
CAP_HEIGHT = 0.40          # the capital H's ink height, as a fraction of the image
BASELINE = 0.66            # the baseline's row, as a fraction of the image
# RINSERVE_GLYPH_FONTS (folders, ':'-separated) replaces them: a GPU host has no fonts but the subset that
# `pack-fonts` makes (the same faces, cut to CHARS, so the same selection and split).
FONT_DIRS = tuple(filter(None, os.environ.get("RINSERVE_GLYPH_FONTS", "").split(":"))) or (
    "/usr/share/fonts", "/usr/share/texmf/fonts", "/usr/share/texlive/texmf-dist/fonts")
DATA_DIR = os.environ.get("RINSERVE_GLYPH_DATA", "data/glyphs")
# Small caps draw lowercase as capitals; math, symbol and script faces are not text faces.
EXCLUDE = re.compile(r"(\bSC\b|Caps|Smallcaps|Math|Keyboard|Symbol|Dingbat|Z003|Chorus|Dunhill)", re.I)
CLUSTERS = [  # family-name prefix -> design cluster; otherwise a family's first word is its cluster
    (("Latin Modern", "CMU", "LM "), "Computer Modern"),
    (("TeX Gyre Heros", "Nimbus Sans", "FreeSans", "Liberation Sans", "Arimo"), "Helvetica"),
    (("TeX Gyre Termes", "Nimbus Roman", "FreeSerif", "Liberation Serif", "Tinos", "Doulos"), "Times"),
    (("TeX Gyre Cursor", "Nimbus Mono", "FreeMono", "Liberation Mono", "Cousine"), "Courier"),
    (("TeX Gyre Pagella", "P052"), "Palatino"),
    (("TeX Gyre Bonum", "URW Bookman"), "Bookman"),
    (("TeX Gyre Schola", "C059"), "Century Schoolbook"),
    (("TeX Gyre Adventor", "URW Gothic"), "Avant Garde"),
    (("DejaVu", "Hack"), "DejaVu"),
    (("Noto Sans", "Open Sans"), "Open Sans"),
    (("Linux Libertine", "Linux Biolinum"), "Libertine"),
    (("Gentium",), "Gentium"),
    (("Inter",), "Inter"),
]
HELDOUT_CLUSTERS = ("Palatino", "Century Schoolbook", "Avant Garde", "PT", "Lato", "Andika", "Go", "Carlito",
                    "Charis")


def class_name(ch: str) -> str:
    return f"{ch} (U+{ord(ch):04X})"


CLASS_NAMES = [class_name(c) for c in CHARS]


def judge_group_of() -> list[int]:
    """Class id -> the id of its judge group's first member (itself when it is in no group)."""
    out = list(range(len(CHARS)))
    for group in JUDGE_GROUPS:
        first = CHARS.index(group[0])
        for ch in group:
            out[CHARS.index(ch)] = first
    return out


def base_of() -> list[int]:
    """Class id -> the id of its base letter, the first character of its canonical decomposition (U+00C0 -> A;
    U+0133 and U+0141 have none and stay). A diagnostic, not a goal: accuracy up to the marks tells a model that
    draws the wrong letter from one that draws the right letter with the wrong mark."""
    return class_parts(CLASS_NAMES)[0]


def char_of(name: str) -> str:
    """The character a class name (class_name's form, 'Ï (U+00CF)') stands for; ValueError for any other name."""
    m = re.fullmatch(r".* \(U\+([0-9A-F]{4,6})\)", name)
    if not m:
        raise ValueError(f"{name!r} is not a glyph class name ('X (U+XXXX)')")
    return chr(int(m.group(1), 16))


def class_parts(names: list[str]) -> tuple[list[int], list[int], int]:
    """Each class's parts by its canonical decomposition: (base, mark, number of marks). base: the id of the class
    its first character names (U+00C0 -> A), or its own id where that is no class or there is none (U+0133, U+0141
    stay). mark: 0 for none, else 1 + the index of its combining sequence among the distinct ones, in order of
    first appearance (U+00C0 and U+00C8 share the grave's). training.train's class_parts shares them across classes."""
    import unicodedata
    chars = [char_of(n) for n in names]
    decomposed = [unicodedata.normalize("NFD", ch) for ch in chars]
    base = [chars.index(d[0]) if d[0] in chars else i for i, d in enumerate(decomposed)]
    marks = list(dict.fromkeys(d[1:] for d in decomposed if len(d) > 1))
    mark = [1 + marks.index(d[1:]) if len(d) > 1 else 0 for d in decomposed]
    return base, mark, len(marks)


def mark_names(names: list[str]) -> list[str]:
    """class_parts' mark ids -> names: 'none', then each combining sequence's Unicode name ('acute accent')."""
    import unicodedata
    _, mark, num_marks = class_parts(names)
    out = ["none"] + [""] * num_marks
    for name, m in zip(names, mark):
        if m and not out[m]:
            seq = unicodedata.normalize("NFD", char_of(name))[1:]
            out[m] = " + ".join(unicodedata.name(c).lower().removeprefix("combining ") for c in seq)
    return out


def marked_of_case(names: list[str], case) -> list[bool]:
    """Whether each class is a letter with a mark (class_parts) whose character passes case (str.isupper,
    str.islower): the groups of the judge's marks table (glyph_judge.marked_case_rows)."""
    mark = class_parts(names)[1]
    return [m != 0 and case(char_of(n)) for n, m in zip(names, mark)]


def marked_capitals(names: list[str]) -> list[bool]:
    """The capital letters with a mark (U+00C0, U+0100), the group the judge's marks table finds hardest at 768 px."""
    return marked_of_case(names, str.isupper)


OVERSAMPLE_GROUPS = {"marked_capitals": marked_capitals}


def class_weights(names: list[str], spec: str) -> list[float] | None:
    """training.train's oversample: '' -> None (every training image equally likely); 'GROUP@k' -> each class's
    weight, k for the classes of GROUP (OVERSAMPLE_GROUPS) and 1 for the rest, so an image of GROUP is drawn k times
    as often as before relative to the others. ValueError for any other form."""
    if not spec:
        return None
    group, _, k = spec.partition("@")
    try:
        factor = float(k)
    except ValueError:
        factor = -1.0
    if group not in OVERSAMPLE_GROUPS or not factor > 0:
        raise ValueError(f"oversample must be GROUP@k with GROUP one of {sorted(OVERSAMPLE_GROUPS)} and k > 0 "
                         f"(got {spec!r})")
    return [factor if hit else 1.0 for hit in OVERSAMPLE_GROUPS[group](names)]


@dataclass
class Face:
    path: str
    family: str
    style: str
    cluster: str
    split: str
    classes: list   # class ids the face's cmap covers

    @property
    def key(self) -> str:
        return f"{self.family} {self.style}"


def cluster_of(family: str) -> str:
    for prefixes, cluster in CLUSTERS:
        if family.startswith(prefixes):
            return cluster
    return family.split()[0]


def find_faces(font_dirs=FONT_DIRS, min_coverage: int = MIN_COVERAGE) -> list[Face]:
    """The faces, sorted by family and style; one file per (family, style)."""
    from fontTools.ttLib import TTFont
    faces, seen = [], set()
    paths = sorted(os.path.join(root, f) for top in font_dirs if os.path.isdir(top)
                   for root, _, files in os.walk(top) for f in files if f.lower().endswith((".ttf", ".otf")))
    for path in paths:
        try:
            font = TTFont(path, lazy=True)
            cmap = font.getBestCmap() or {}
            names = font["name"]
            family = (names.getDebugName(16) or names.getDebugName(1) or "").strip()
            style = (names.getDebugName(17) or names.getDebugName(2) or "").strip()
        except Exception:   # noqa: BLE001 - a file fontTools cannot read is not a face
            continue
        classes = [i for i, ch in enumerate(CHARS) if ord(ch) in cmap]
        if len(classes) < min_coverage or not family or EXCLUDE.search(f"{family} {style}") or (family, style) in seen:
            continue
        seen.add((family, style))
        cluster = cluster_of(family)
        faces.append(Face(path, family, style, cluster, "heldout" if cluster in HELDOUT_CLUSTERS else "train", classes))
    faces.sort(key=lambda f: (f.family, f.style))
    families = {}
    for f in faces:
        families.setdefault(f.family, []).append(f)
    kept = []
    for members in families.values():
        n = len(members)
        kept += members if n <= MAX_PER_FAMILY else [members[i * n // MAX_PER_FAMILY] for i in range(MAX_PER_FAMILY)]
    return sorted(kept, key=lambda f: (f.family, f.style))


def load_font(path: str, resolution: int):
    """The face at the pixel size that makes its capital H CAP_HEIGHT * resolution tall."""
    from PIL import ImageFont
    probe = ImageFont.truetype(path, 1000)
    top, bottom = probe.getbbox("H", anchor="ls")[1::2]
    size = max(1, round(1000 * CAP_HEIGHT * resolution / max(1, bottom - top)))
    return ImageFont.truetype(path, size)


def render(font, ch: str, resolution: int):
    """One glyph as uint8 [R, R] (255 = paper), or None when it has no ink or would leave the image."""
    from PIL import Image, ImageDraw
    left, top, right, bottom = font.getbbox(ch, anchor="ls")
    if right <= left or bottom <= top:
        return None
    x = round(resolution / 2 - (left + right) / 2)
    y = round(BASELINE * resolution)
    if x + left < 0 or x + right > resolution or y + top < 0 or y + bottom > resolution:
        return None
    img = Image.new("L", (resolution, resolution), 255)
    ImageDraw.Draw(img).text((x, y), ch, font=font, fill=0, anchor="ls")
    arr = np.asarray(img)
    return arr if arr.min() < 128 else None     # ink that never reaches mid-gray is not a glyph


def _render_face(job):
    path, classes, resolution = job
    font = load_font(path, resolution)
    out = []
    for c in classes:
        img = render(font, CHARS[c], resolution)
        if img is not None:
            out.append((c, img))
    return out


class Rendered:
    """A split's (face, class) pairs as a map-style data set that renders each glyph when asked:
    item -> (uint8 [1, R, R], class id). Each worker process opens the fonts it needs once."""

    def __init__(self, resolution: int, split: str, faces: list[Face] | None = None):
        faces = find_faces() if faces is None else faces
        self.resolution = resolution
        self.paths = [f.path for f in faces]
        self.items = [(i, c) for i, f in enumerate(faces) if f.split == split for c in f.classes]
        self.fonts = {}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        import torch
        face, c = self.items[index]
        font = self.fonts.get(face) or self.fonts.setdefault(face, load_font(self.paths[face], self.resolution))
        img = render(font, CHARS[c], self.resolution)
        if img is None:                      # a glyph left out of the caches: the next one instead
            return self[(index + 1) % len(self.items)]
        return torch.from_numpy(img.copy())[None], c


def cache_dir(resolution: int, root: str | None = None) -> str:
    return os.path.join(root or DATA_DIR, f"r{resolution}")


def build(resolution: int, root: str | None = None, faces: list[Face] | None = None, workers: int = 2,
          splits=("train", "heldout")) -> dict:
    """Render every face's glyphs at `resolution` into <root>/r<R>/<split>.u8 (raw uint8 [N, R, R], read
    with np.memmap) with <split>.npz (labels, face index) and manifest.json. Returns the manifest."""
    faces = find_faces() if faces is None else faces
    out = cache_dir(resolution, root)
    os.makedirs(out, exist_ok=True)
    manifest = dict(resolution=resolution, chars="".join(CHARS), cap_height=CAP_HEIGHT, baseline=BASELINE,
                    faces=[asdict(f) | {"classes": len(f.classes)} for f in faces], splits={})
    for split in splits:
        picked = [(i, f) for i, f in enumerate(faces) if f.split == split]
        jobs = [(f.path, f.classes, resolution) for _, f in picked]
        raw_path = os.path.join(out, f"{split}.u8")
        labels, face_ids, n = [], [], 0
        sha = hashlib.sha256()
        with open(raw_path + ".tmp", "wb") as raw, Pool(workers) as pool:
            for (face_id, face), glyphs in zip(picked, pool.imap(_render_face, jobs)):
                for c, img in glyphs:
                    raw.write(img.tobytes())
                    sha.update(img.tobytes())
                    labels.append(c)
                    face_ids.append(face_id)
                n += len(face.classes) - len(glyphs)
        os.replace(raw_path + ".tmp", raw_path)
        np.savez(os.path.join(out, f"{split}.npz"), labels=np.array(labels, np.int16), faces=np.array(face_ids, np.int16))
        manifest["splits"][split] = dict(images=len(labels), faces=len(picked), left_out=n, sha256=sha.hexdigest(),
                                         per_class_min=int(np.bincount(labels, minlength=len(CHARS)).min()))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def load(resolution: int, split: str, root: str | None = None):
    """(images uint8 memmap [N, 1, R, R], labels int64 [N], face ids int64 [N]) of a built cache."""
    out = cache_dir(resolution, root)
    raw = os.path.join(out, f"{split}.u8")
    if not os.path.exists(raw):
        raise FileNotFoundError(f"no glyph cache at {raw}: run python3 -m training.glyphs build --resolution {resolution}")
    meta = np.load(os.path.join(out, f"{split}.npz"))
    n = len(meta["labels"])
    images = np.memmap(raw, dtype=np.uint8, mode="c", shape=(n, 1, resolution, resolution))
    return images, meta["labels"].astype(np.int64), meta["faces"].astype(np.int64)


def check(resolution: int, root: str | None = None) -> list[str]:
    """What is wrong with a built cache (empty when nothing): sizes, hashes, splits by design cluster,
    placement, and every class present in both splits."""
    problems = []
    with open(os.path.join(cache_dir(resolution, root), "manifest.json")) as f:
        manifest = json.load(f)
    faces = manifest["faces"]
    clusters = {s: {faces[i]["cluster"] for i in set(load(resolution, s, root)[2].tolist())} for s in manifest["splits"]}
    if len(clusters) == 2 and clusters["train"] & clusters["heldout"]:
        problems.append(f"clusters in both splits: {sorted(clusters['train'] & clusters['heldout'])}")
    for split, info in manifest["splits"].items():
        images, labels, _ = load(resolution, split, root)
        if len(images) != info["images"]:
            problems.append(f"{split}: {len(images)} images, the manifest says {info['images']}")
        sha = hashlib.sha256()
        for i in range(0, len(images), 1024):
            sha.update(np.ascontiguousarray(images[i:i + 1024]).tobytes())
        if sha.hexdigest() != info["sha256"]:
            problems.append(f"{split}: the images' sha256 differs from the manifest's")
        missing = sorted(set(range(len(CHARS))) - set(labels.tolist()))
        if missing:
            problems.append(f"{split}: no image of {', '.join(CLASS_NAMES[c] for c in missing[:5])}")
        step = max(1, len(images) // 500)
        sample = np.asarray(images[::step]).reshape(-1, resolution, resolution)
        if (sample.min((1, 2)) >= 128).any():
            problems.append(f"{split}: an image without ink")
        border = np.concatenate([sample[:, 0], sample[:, -1], sample[:, :, 0], sample[:, :, -1]], axis=1)
        if (border < 128).any():
            problems.append(f"{split}: ink on the border of an image")
    return problems


def pack_fonts(faces: list[Face], out: str) -> int:
    """Each face cut to CHARS (names, metrics and hinting kept) into out/, for a host without the packages.
    Returns the bytes written."""
    import logging
    from fontTools import subset
    logging.getLogger("fontTools").setLevel(logging.ERROR)     # tables it drops (FFTM, TeX, ...) are not outlines
    os.makedirs(out, exist_ok=True)
    options = subset.Options()
    options.name_IDs, options.name_languages, options.notdef_outline = ["*"], ["*"], True
    options.layout_features = []
    total = 0
    for i, face in enumerate(faces):
        font = subset.load_font(face.path, options)
        sub = subset.Subsetter(options)
        sub.populate(unicodes=[ord(c) for c in CHARS])
        sub.subset(font)
        dst = os.path.join(out, f"{i:03d}-{os.path.basename(face.path)}")
        subset.save_font(font, dst, options)
        total += os.path.getsize(dst)
    return total


def package_of(path: str) -> str:
    try:
        out = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True, check=True).stdout
        return out.split(":")[0]
    except (OSError, subprocess.CalledProcessError):
        return "?"


def license_of(package: str) -> str:
    """The licenses a package's Debian copyright file names (its License: lines)."""
    try:
        with open(f"/usr/share/doc/{package}/copyright", errors="replace") as f:
            names = {m.group(1).strip() for m in re.finditer(r"^License:\s*(\S.*)$", f.read(), re.M)}
    except OSError:
        names = set()
    names = {n for n in names if re.fullmatch(r"[\w.+-]+( (with|and|or) [\w .+-]+)?", n) and len(n) <= 60}
    return ", ".join(sorted(names)) or f"see /usr/share/doc/{package}/copyright"


def faces_table(faces: list[Face]) -> str:
    """FONTS.md: every face with its package, license, cluster and split."""
    rows = ["| face | package | license | design cluster | split | characters |", "|---|---|---|---|---|---|"]
    licenses = {}
    for f in faces:
        pkg = package_of(f.path)
        licenses.setdefault(pkg, license_of(pkg))
        rows.append(f"| {f.key} | {pkg} | {licenses[pkg]} | {f.cluster} | {f.split} | {len(f.classes)} |")
    n_train = sum(f.split == "train" for f in faces)
    head = (f"# Glyph faces\n\n{len(faces)} faces ({n_train} train, {len(faces) - n_train} held out) from "
            f"{len(licenses)} Debian packages, made by `python3 -m training.glyphs faces --write training/FONTS.md`. "
            f"Held-out design clusters: {', '.join(HELDOUT_CLUSTERS)}.\n\n")
    return head + "\n".join(rows) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["faces", "build", "check", "classes", "pack-fonts"])
    ap.add_argument("--out", help="pack-fonts: the folder for the cut fonts")
    ap.add_argument("--split", action="append", help="build: only this split (may repeat; default both)")
    ap.add_argument("--resolution", type=int, action="append", help="build/check: may repeat")
    ap.add_argument("--root", default=None, help=f"the cache folder (default {DATA_DIR}, or $RINSERVE_GLYPH_DATA)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--write", help="faces: write the table (FONTS.md) here")
    args = ap.parse_args(argv)
    if args.command == "classes":
        for i, name in enumerate(CLASS_NAMES):
            print(i, name)
        return 0
    faces = find_faces()
    if not faces:
        print("error: no face covers enough characters: run training/glyph_fonts.sh", file=sys.stderr)
        return 2
    if args.command == "pack-fonts":
        total = pack_fonts(faces, args.out)
        print(f"{len(faces)} faces cut to {len(CHARS)} characters: {total / 1e6:.1f} MB in {args.out}")
        return 0
    if args.command == "faces":
        table = faces_table(faces)
        if args.write:
            with open(args.write, "w") as f:
                f.write(table)
        print(table if not args.write else table.split("\n\n")[1])
        return 0
    status = 0
    for res in args.resolution or [256]:
        if args.command == "build":
            m = build(res, args.root, faces, args.workers, splits=tuple(args.split or ("train", "heldout")))
            print(json.dumps({"resolution": res, **m["splits"]}))
        else:
            problems = check(res, args.root)
            print(f"r{res}: " + ("ok" if not problems else "; ".join(problems)))
            status = status or (1 if problems else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
