"""The glyph data set (training.glyphs) and its judge's edge-width measure, on real fonts: the test
command installs fonts-dejavu-core, whose three families cover every character of the class list."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training import glyphs


def dejavu_faces(n=3):
    faces = [f for f in glyphs.find_faces() if f.family in ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")]
    if len(faces) < n:
        pytest.fail("fonts-dejavu-core is missing (./test.sh installs it)")
    return faces[:n]


def test_the_class_list_has_284_characters_named_by_character_and_code_point():
    assert len(glyphs.CHARS) == len(set(glyphs.CHARS)) == 284
    assert glyphs.CLASS_NAMES[0] == "! (U+0021)"
    assert glyphs.CLASS_NAMES[207] == "\u0133 (U+0133)"                 # the mission's class=207: ĳ
    assert glyphs.CLASS_NAMES[glyphs.CHARS.index("\u00CF")] == "\u00CF (U+00CF)"
    assert all(re.fullmatch(r". \(U\+[0-9A-F]{4}\)", n) for n in glyphs.CLASS_NAMES)
    assert " " not in glyphs.CHARS and "\u00D7" not in glyphs.CHARS and "\u00F7" not in glyphs.CHARS
    group = glyphs.judge_group_of()
    assert group[glyphs.CHARS.index("0")] == group[glyphs.CHARS.index("O")]
    assert group[glyphs.CHARS.index("l")] == group[glyphs.CHARS.index("1")] == group[glyphs.CHARS.index("|")]
    assert group[glyphs.CHARS.index("o")] != group[glyphs.CHARS.index("O")]
    assert sum(g != i for i, g in enumerate(group)) == 5                  # O, I, l, |, Đ join a group


def test_accuracy_up_to_the_marks_counts_the_right_letter_with_the_wrong_mark_only():
    from training.glyph_judge import base_hits
    ix = glyphs.CHARS.index
    base = glyphs.base_of()
    assert base[ix("\u00C0")] == base[ix("\u00C3")] == ix("A") and base[ix("\u0107")] == ix("c")
    assert base[ix("\u0141")] == ix("\u0141") and base[ix("\u0133")] == ix("\u0133")    # no decomposition: itself
    assert sum(b != i for i, b in enumerate(base)) == 161
    labels = torch.tensor([ix("\u00C0"), ix("\u00C0"), ix("\u00C0"), ix("\u00D2"), ix("\u0141")])
    named = torch.tensor([ix("\u00C3"), ix("A"), ix("B"), ix("0"), ix("L")])    # wrong mark, no mark, wrong letter,
    assert base_hits(named, labels).tolist() == [True, True, False, True, False]   # O's judge group, stroke lost


def test_a_paired_change_counts_the_images_fixed_and_broken_and_refuses_unmatched_verdicts():
    from training.glyph_judge import paired_change
    before = torch.tensor([True, False, False, True, False, True])
    after = torch.tensor([True, True, True, False, False, True])
    r = paired_change(before, after)
    assert (r["images"], r["fixed"], r["broken"]) == (6, 2, 1)
    assert (r["before"], r["after"], r["change"]) == pytest.approx((0.5, 4 / 6, 1 / 6))
    d = torch.tensor([0.0, 1, 1, -1, 0, 0])
    assert r["error"] == pytest.approx((d.std() / 6 ** 0.5).item())
    assert paired_change(before, before)["change"] == 0 and paired_change(before, before)["error"] == 0
    with pytest.raises(ValueError):
        paired_change(before, after[:5])


def test_the_marks_table_counts_each_mark_and_what_the_judge_saw_instead():
    from training.glyph_judge import marks_rows
    ix = glyphs.CHARS.index
    labels = torch.tensor([ix("\u00C0"), ix("\u00C8"), ix("\u00C0"), ix("\u00C1"), ix("A"), ix("A")])
    named = torch.tensor([ix("\u00C0"), ix("\u00C9"), ix("B"), ix("\u00C1"), ix("A"), ix("\u00C1")])
    rows = {r["mark"]: r for r in marks_rows(named, labels)}
    assert list(rows) == ["none", "grave accent", "acute accent"]          # only the marks asked for
    grave = rows["grave accent"]
    assert (grave["classes"], grave["images"], grave["wrong_mark"], grave["seen_instead"]) == (2, 3, 1, "acute accent")
    assert (grave["accuracy"], grave["base_accuracy"]) == pytest.approx((1 / 3, 2 / 3))
    assert (rows["none"]["accuracy"], rows["none"]["base_accuracy"], rows["none"]["seen_instead"]) == (0.5, 1.0, "acute accent")
    assert (rows["acute accent"]["accuracy"], rows["acute accent"]["wrong_mark"], rows["acute accent"]["seen_instead"]) == (1.0, 0, "")
    assert glyphs.mark_names(glyphs.CLASS_NAMES)[:3] == ["none", "grave accent", "acute accent"]


def test_marked_classes_split_by_case_leave_the_unmarked_and_caseless_out():
    from training.glyph_judge import marked_case_rows
    ix = glyphs.CHARS.index
    labels = torch.tensor([ix("\u00C4"), ix("\u00C4"), ix("\u00D6"), ix("\u00E4"), ix("A"), ix("%")])
    named = torch.tensor([ix("\u00C3"), ix("\u00C4"), ix("B"), ix("\u00E4"), ix("B"), ix("A")])
    rows = {r["case"]: r for r in marked_case_rows(named, labels)}
    assert (rows["capitals"]["images"], rows["small letters"]["images"]) == (3, 1)
    assert (rows["capitals"]["accuracy"], rows["capitals"]["base_accuracy"]) == pytest.approx((1 / 3, 2 / 3))
    assert (rows["small letters"]["accuracy"], rows["small letters"]["base_accuracy"]) == (1.0, 1.0)


def test_design_clusters_keep_clones_of_one_design_on_one_side_of_the_split():
    assert glyphs.cluster_of("TeX Gyre Termes") == glyphs.cluster_of("Liberation Serif") == "Times"
    assert glyphs.cluster_of("Latin Modern Roman") == glyphs.cluster_of("CMU Serif") == "Computer Modern"
    assert glyphs.cluster_of("PT Sans Caption") == glyphs.cluster_of("PT Serif") == "PT"
    assert "Palatino" in glyphs.HELDOUT_CLUSTERS and "Times" not in glyphs.HELDOUT_CLUSTERS


def test_placement_is_deterministic_and_rendered_natively_at_each_resolution():
    face = dejavu_faces(1)[0]
    for res in (64, 256):
        font = glyphs.load_font(face.path, res)
        h = glyphs.render(font, "H", res)
        rows = np.nonzero((h < 128).any(1))[0]
        assert abs((rows[-1] + 1 - rows[0]) - glyphs.CAP_HEIGHT * res) <= 2           # cap height
        assert abs(rows[-1] + 1 - round(glyphs.BASELINE * res)) <= 1                 # sits on the baseline
        cols = np.nonzero((h < 128).any(0))[0]
        assert abs((cols[0] + cols[-1] + 1) / 2 - res / 2) <= 1                      # centred
        assert np.array_equal(h, glyphs.render(glyphs.load_font(face.path, res), "H", res))
    # o is shorter than O: the size comes from the face, not from each glyph's own box.
    font = glyphs.load_font(face.path, 128)
    ink_rows = lambda ch: int((glyphs.render(font, ch, 128) < 128).any(1).sum())
    assert ink_rows("o") < 0.85 * ink_rows("O")


def test_build_caches_each_split_and_check_finds_a_damaged_cache(tmp_path):
    faces = dejavu_faces(3)
    for i, f in enumerate(faces):                     # a stand-in split: two clusters, one held out
        f.cluster, f.split = ("A", "train") if i < 2 else ("B", "heldout")
    m = glyphs.build(32, str(tmp_path), faces, workers=1)
    again = glyphs.build(32, str(tmp_path / "again"), faces, workers=1)
    assert m["splits"]["train"]["sha256"] == again["splits"]["train"]["sha256"]      # deterministic
    assert m["splits"]["train"]["faces"] == 2 and m["splits"]["heldout"]["faces"] == 1
    images, labels, face_ids = glyphs.load(32, "train", str(tmp_path))
    assert images.shape[1:] == (1, 32, 32) and len(images) == m["splits"]["train"]["images"] == len(labels)
    assert set(labels.tolist()) == set(range(284)) and set(face_ids.tolist()) == {0, 1}
    assert glyphs.check(32, str(tmp_path)) == []
    raw = tmp_path / "r32" / "heldout.u8"
    data = bytearray(raw.read_bytes())
    data[100] ^= 0xFF
    raw.write_bytes(bytes(data))
    assert any("sha256" in p for p in glyphs.check(32, str(tmp_path)))


def test_the_training_loader_reads_a_cache_at_the_models_resolution(tmp_path, monkeypatch):
    from training.data import DatasetError, load_dataset
    glyphs.build(32, str(tmp_path), dejavu_faces(1), workers=1, splits=("train",))
    monkeypatch.setattr(glyphs, "DATA_DIR", str(tmp_path))
    images, labels, names = load_dataset("glyphs", "train", 32, 1)
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 32, 32) and names[207] == "\u0133 (U+0133)"
    with pytest.raises(DatasetError, match="glyphs build --resolution 48"):
        load_dataset("glyphs", "train", 48, 1)


def test_edge_width_tells_a_native_render_from_an_enlarged_one():
    from training.glyph_judge import edge_width
    face = dejavu_faces(1)[0]
    native = torch.from_numpy(glyphs.render(glyphs.load_font(face.path, 512), "O", 512).astype(np.float32) / 255)
    small = torch.from_numpy(glyphs.render(glyphs.load_font(face.path, 128), "O", 128).astype(np.float32) / 255)
    enlarged = F.interpolate(small[None, None], size=(512, 512), mode="bilinear", align_corners=False)[0]
    sharp, blurred = edge_width(native[None, None]), edge_width(enlarged[None])
    assert sharp < 1.0 and blurred > 2.0, (sharp, blurred)


def test_class_gap_compares_the_true_class_with_another_on_the_same_noise(tmp_path, monkeypatch):
    from training.glyph_judge import class_gap
    from training.fixtures import TINY, tiny_model
    from training.model import RINConfig
    face = dejavu_faces(1)[0]
    face.cluster, face.split = "A", "heldout"
    glyphs.build(32, str(tmp_path), [face], workers=1, splits=("heldout",))
    monkeypatch.setattr(glyphs, "DATA_DIR", str(tmp_path))
    model = tiny_model(cfg=RINConfig(**{**TINY.to_dict(), "resolution": 32, "patch_size": 8, "num_classes": 284,
                                         "class_names": []}))
    config = dict(model=model.cfg.to_dict(), input_scale=0.5, prediction="x", normalize_input=True, train_schedule="cosine")

    def gap(path):
        torch.save(dict(ema=model.state_dict(), config=config, step=7), path)
        return class_gap(str(path), n=16)

    with torch.no_grad():
        model.class_embed.weight.normal_(0, 3.0)
    told = gap(tmp_path / "told.pt")
    assert [r["t"] for r in told] == [0.95, 0.85] and all(r["step"] == 7 and r["images"] == 16 for r in told)
    assert all(abs(r["true"] - r["other"]) > 1e-4 for r in told)          # the class changes the prediction
    with torch.no_grad():
        model.class_embed.weight.zero_()                                   # a model blind to its class
    blind = gap(tmp_path / "blind.pt")
    assert all(abs(r["true"] - r["other"]) < 1e-6 for r in blind)
    assert all(r["true"] > 0 for r in blind)


def test_class_parts_share_each_mark_across_the_letters_that_carry_it():
    base, mark, num_marks = glyphs.class_parts(glyphs.CLASS_NAMES)
    at = {ch: i for i, ch in enumerate(glyphs.CHARS)}
    assert num_marks == 13 and base == glyphs.base_of()
    assert mark[at["\u00C0"]] == mark[at["\u00E8"]] == mark[at["\u00F2"]] > 0        # the grave: one row
    assert mark[at["\u00C1"]] != mark[at["\u00C0"]]
    unmarked = "".join(ch for ch, m in zip(glyphs.CHARS, mark) if m == 0 and ord(ch) > 0x7E)
    assert unmarked == ("\u00C6\u00D0\u00D8\u00DE\u00DF\u00E6\u00F0\u00F8\u00FE\u0110\u0111\u0126\u0127\u0131"
                        "\u0132\u0133\u0138\u013F\u0140\u0141\u0142\u0149\u014A\u014B\u0152\u0153\u0166\u0167\u017F")
    assert all(m == 0 for ch, m in zip(glyphs.CHARS, mark) if ord(ch) <= 0x7E)
    with pytest.raises(ValueError, match="not a glyph class name"):
        glyphs.class_parts(["T-shirt/top"])


def test_oversampling_draws_the_marked_capitals_k_times_as_often_and_refuses_a_bad_spec(tmp_path, monkeypatch):
    from training.data import DatasetError, WeightedForever, batch_stream
    names = list(glyphs.CLASS_NAMES)
    hit = glyphs.marked_capitals(names)
    ix = glyphs.CHARS.index
    assert hit[ix("\u00C4")] and hit[ix("\u0100")]                                   # Ä, Ā
    assert not any(hit[ix(c)] for c in ("A", "\u00E4", "\u0141", "%", "\u00DF"))    # plain, small, Ł (no mark), caseless
    assert sum(hit) == 81 and glyphs.class_weights(names, "") is None
    assert glyphs.class_weights(names, "marked_capitals@3")[ix("\u00C4")] == 3.0
    for bad in ("marked_capitals", "marked_capitals@0", "capitals@2", "marked_capitals@x"):
        with pytest.raises(ValueError, match="GROUP@k"):
            glyphs.class_weights(names, bad)
    glyphs.build(32, str(tmp_path), dejavu_faces(1), workers=1, splits=("train",))
    monkeypatch.setattr(glyphs, "DATA_DIR", str(tmp_path))
    share = {}
    for spec in ("", "marked_capitals@3"):
        stream, _ = batch_stream("glyphs", 32, 1, 512, oversample=spec)
        batches = stream(torch.Generator().manual_seed(0))
        labels = torch.cat([next(batches)[1] for _ in range(20)]).long()
        share[spec] = torch.tensor(hit)[labels].float().mean().item()
    # the rendered path's sampler (data_workers > 0): the same draw, endless
    drawn = WeightedForever(torch.tensor(glyphs.class_weights(names, "marked_capitals@3"), dtype=torch.double),
                            torch.Generator().manual_seed(0), chunk=1000)
    first = [i for _, i in zip(range(10_240), iter(drawn))]
    share["rendered"] = torch.tensor(hit)[first].float().mean().item()
    p = 81 / 284                                      # one face renders every class once
    assert share["rendered"] == pytest.approx(3 * p / (1 + 2 * p), abs=0.02)
    assert share[""] == pytest.approx(p, abs=0.02)
    assert share["marked_capitals@3"] == pytest.approx(3 * p / (1 + 2 * p), abs=0.02)
    with pytest.raises(DatasetError, match="glyph data set"):
        batch_stream("fashion-mnist", 28, 1, 8, oversample="marked_capitals@2")
    from training.train import load_config
    with pytest.raises(ValueError, match="GROUP@k"):
        load_config(None, ["dataset=glyphs", "oversample=marked_capitals@-1"])
