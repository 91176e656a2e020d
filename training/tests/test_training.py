"""Tests of the trainer and exporter: run with /usr/bin/python3 -m pytest training/tests"""
import json
import math
import os

import numpy as np
import onnx
import pytest
import torch

from training.data import DatasetError, load_dataset, to_model_input
from training.diffusion import Schedule, normalize, sample, training_loss
from training.export import export_onnx, metadata, read_metadata
from training.fixtures import TINY, tiny_model
from training.lamb import Lamb
from training.model import RIN, RINConfig
from training.train import TrainConfig, check_writable, load_config, param_groups

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARITY = os.path.join(REPO, "tests", "fixtures", "parity")


def tiny(**kw):
    cfg = RINConfig(**{**TINY.to_dict(), **kw})
    torch.manual_seed(0)
    return RIN(cfg)


def test_forward_shapes_follow_the_contract():
    model = tiny(resolution=32, patch_size=8, channels=3)
    x = torch.randn(3, 3, 32, 32)
    pred, lat = model(x, torch.rand(3), torch.tensor([0, 1, 10]), torch.zeros(3, 8, 32))
    assert pred.shape == (3, 3, 32, 32)
    assert lat.shape == (3, 8, 32)


def test_export_has_contract_inputs_outputs_metadata_and_dynamic_batch(tmp_path):
    model = tiny().eval()
    meta = metadata(model, name="t", prediction="eps", input_scale=0.5, normalize_input=True,
                    train_schedule="cosine", dataset="none", train_steps=0, trained=False)
    path = str(tmp_path / "t.onnx")
    export_onnx(model, path, meta)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17
    assert [i.name for i in proto.graph.input] == ["x", "gamma", "class_id", "latents_in"]
    assert [o.name for o in proto.graph.output] == ["pred", "latents_out"]
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(proto.graph.input) + list(proto.graph.output)}
    assert dims["x"] == ["batch", 1, 16, 16] and dims["latents_out"] == ["batch", 8, 32]
    assert proto.graph.input[2].type.tensor_type.elem_type == onnx.TensorProto.INT64
    got = read_metadata(path)
    assert got["rin.input_scale"] == "0.5" and got["rin.null_class"] == "10" and got["rin.latents"] == "8,32"
    assert len(json.loads(got["rin.class_names"])) == 10
    assert not os.path.exists(path + ".tmp")


@pytest.mark.parametrize("text", ["cosine", "linear", "cosine@0.2,1,1", "sigmoid@-3,3,0.9"])
def test_schedule_values_match_the_contract_formulas(text):
    t = np.linspace(0, 1, 11)
    if text == "cosine":
        want = np.cos(((t + 0.0002) / 1.00025) * math.pi / 2) ** 2
    elif text == "linear":
        want = 1 - t
    elif text.startswith("cosine@"):
        s, e, tau = 0.2, 1.0, 1.0
        v = lambda u: np.cos(u * math.pi / 2) ** (2 * tau)
        want = (v(t * (e - s) + s) - v(e)) / (v(s) - v(e))
    else:
        s, e, tau = -3.0, 3.0, 0.9
        v = lambda u: 1 / (1 + np.exp(-u / tau))
        want = (v(e) - v(t * (e - s) + s)) / (v(e) - v(s))
    np.testing.assert_allclose(Schedule(text)(torch.tensor(t)).numpy(), np.clip(want, 1e-9, 1), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("bad", ["cos", "sigmoid@3,-3,1", "cosine@0,1,0", "sigmoid@a,b,c", ""])
def test_bad_schedules_are_refused_with_the_allowed_forms(bad):
    with pytest.raises(ValueError, match="schedule"):
        Schedule(bad)


def test_normalize_gives_unit_population_std_per_example():
    x = torch.randn(4, 1, 8, 8) * torch.tensor([0.1, 1, 5, 20]).view(4, 1, 1, 1)
    std = normalize(x).flatten(1).std(dim=1, unbiased=False)
    np.testing.assert_allclose(std.numpy(), np.ones(4), rtol=1e-5)


@pytest.mark.parametrize("prediction", ["eps", "x"])
def test_training_steps_reduce_loss_on_a_fixed_batch(prediction):
    model = tiny()
    opt = Lamb(param_groups(model, 0.01), lr=1e-2)
    x = torch.rand(16, 1, 16, 16) * 2 - 1
    y = torch.randint(0, 10, (16,))
    sched = Schedule("cosine@0.2,1,1")

    def loss_at_seed():
        torch.manual_seed(123)
        with torch.no_grad():
            return float(training_loss(model, x, y, sched, 0.5, prediction))

    before = loss_at_seed()
    for _ in range(30):
        loss = training_loss(model, x, y, sched, 0.5, prediction)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_at_seed() < 0.85 * before


def test_pytorch_still_reproduces_the_committed_parity_fixture():
    """The C# suite runs the committed tiny.onnx in ONNX Runtime against these same outputs."""
    index = json.load(open(os.path.join(PARITY, "index.json")))
    call = index["call"]

    def load(entry):
        dtype = np.int64 if entry["dtype"] == "int64" else np.float32
        return torch.from_numpy(np.fromfile(os.path.join(PARITY, entry["file"]), dtype=dtype).reshape(entry["shape"]))

    inputs = [load(call["inputs"][k]) for k in ("x", "gamma", "class_id", "latents_in")]
    with torch.no_grad():
        pred, lat = tiny_model()(*inputs)
    assert torch.max(torch.abs(pred - load(call["outputs"]["pred"]))) < 1e-5
    assert torch.max(torch.abs(lat - load(call["outputs"]["latents_out"]))) < 1e-5


def test_sampler_is_seeded_in_range_and_follows_the_class():
    model = tiny_model()
    run = lambda seed, cls: sample(model, cls, steps=4, schedule=Schedule("cosine"), input_scale=1.0,
                                   prediction="eps", generator=torch.Generator().manual_seed(seed))
    a, b, c = run(1, [3, 4]), run(1, [3, 4]), run(2, [3, 4])
    assert a.shape == (2, 1, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(run(1, [3, 3])[1], run(1, [3, 4])[1])


def test_dpmpp_2m_is_ddim_at_first_order_and_a_second_order_step_where_it_has_history():
    """Two steps are both first order (the first has no history, the last is the lower-order final step): exactly DDIM.
    With more steps the middle ones extrapolate from the previous x0, so the trajectories part."""
    model = tiny_model()

    def run(sampler, steps):
        x_init = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
        return sample(model, [3, 4], steps=steps, schedule=Schedule("cosine"), input_scale=0.5, prediction="x",
                      sampler=sampler, x_init=x_init, record=True)[1]["x_steps"]

    assert torch.equal(run("dpmpp_2m", 2), run("ddim", 2))
    ddim, dpm = run("ddim", 5), run("dpmpp_2m", 5)
    assert torch.equal(dpm[0], ddim[0]) and not torch.allclose(dpm[1], ddim[1])


def test_guidance_interval_guides_only_the_steps_whose_t_it_holds():
    model = tiny(class_dropout=0.1).eval()
    null = model.cfg.num_classes

    def run(guidance, interval=(0.0, 1.0)):
        x_init = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
        return sample(model, [3, 4], steps=4, schedule=Schedule("cosine"), input_scale=0.5, prediction="x",
                      guidance=guidance, null_class=null, guidance_interval=interval, x_init=x_init,
                      record=True)[1]["x_steps"]

    def same(a, b):                       # a batch of 2 or 4 rows may round a matrix product differently
        return torch.allclose(a, b, atol=1e-5, rtol=0)

    unguided, whole = run(0.0), run(3.0)
    assert not torch.allclose(whole, unguided, atol=1e-3, rtol=0)
    assert same(run(3.0, (0.9, 0.95)), unguided)                 # 4 steps at t = 1, 0.75, 0.5, 0.25: none inside
    late = run(3.0, (0.0, 0.6))                                  # guided at t = 0.5 and 0.25 only
    assert same(late[:2], unguided[:2]) and not torch.allclose(late[2:], unguided[2:], atol=1e-3, rtol=0)


def test_guidance_interval_text_and_configurations_are_checked():
    from training.export import interval_text, parse_interval
    from training.guidance_interval import parse_config
    assert parse_interval("0.1,0.8") == (0.1, 0.8) and interval_text((0.0, 1.0)) == "0,1"
    for bad in ("0.8,0.1", "0.5", "-0.1,1", "0,1.5", "a,b"):
        with pytest.raises(ValueError):
            parse_interval(bad)
    assert parse_config("3@0.2,0.9") == dict(guidance=3.0, low=0.2, high=0.9, label="3@0.2,0.9")
    assert parse_config("2")["label"] == "2@0,1"
    with pytest.raises(ValueError):
        parse_config("-1@0,1")


def test_an_interval_replaces_the_baseline_only_when_better_on_one_measure_and_no_worse_on_the_other():
    from training.guidance_interval import choose

    def r(label, acc, acc_diff, acc_se, fd_ratio, fd_se, rows=40):
        return dict(label=label, accuracy=acc, fd=fd_ratio, acc_diff=acc_diff, acc_diff_se=acc_se, fd_ratio=fd_ratio,
                    fd_ratio_se=fd_se, network_rows=rows, correct=[1.0] * round(100 * acc) + [0.0] * round(100 - 100 * acc))
    base = r("2@0,1", 0.70, 0.0, 0.0, 1.0, 0.0)
    assert choose([base]) is base
    sharper_fd = r("2@0,0.6", 0.70, 0.0, 0.01, 0.80, 0.03)       # same accuracy, FD lower by far more than its SE
    more_accurate_worse_fd = r("4@0,1", 0.80, 0.10, 0.02, 1.20, 0.03)
    noise = r("3@0.1,0.7", 0.71, 0.01, 0.02, 0.99, 0.03)         # inside one SE on both: no gain
    assert choose([base, more_accurate_worse_fd, noise]) is base
    assert choose([base, sharper_fd, more_accurate_worse_fd, noise]) is sharper_fd
    best = r("4@0,0.6", 0.75, 0.05, 0.02, 0.90, 0.03)
    assert choose([base, sharper_fd, best]) is best                # both gain, the rows alike: the most accurate


def test_of_the_improvements_within_one_error_of_the_most_accurate_the_one_with_fewest_network_rows_wins():
    from training.guidance_interval import choose, network_rows

    assert network_rows(2, 0.0, 20) == 40
    assert network_rows(2, 0.4, 20) == 33                          # t = 1, 0.95, ..., 0.4: 13 steps run the null class
    assert network_rows(2, 0.2, 20) == 36                          # 1 - 16/20 is just below 0.2 in double, as in C#
    assert network_rows(0, 0.2, 20) == 20                          # unguided: no null class at all

    def r(label, correct, fd_ratio, rows):
        acc = sum(correct) / len(correct)
        return dict(label=label, accuracy=acc, fd=fd_ratio, acc_diff=0.0, acc_diff_se=0.01, fd_ratio=fd_ratio,
                    fd_ratio_se=0.01, network_rows=rows, correct=correct)
    base = r("2@0,1", [1.0] * 80 + [0.0] * 20, 1.0, 40)
    wide = r("2@0.2,1", [1.0] * 81 + [0.0] * 19, 0.95, 36)
    narrow_tie = r("2@0.4,1", [1.0] * 80 + [0.0] * 20, 0.95, 33)  # one image fewer right: within one paired error
    assert choose([base, wide, narrow_tie]) is narrow_tie
    narrow_worse = r("2@0.4,1", [1.0] * 70 + [0.0] * 30, 0.95, 33)   # eleven fewer, all of them wide's right ones
    narrow_worse["acc_diff"] = 0.0                                     # (still no worse than the baseline by its SE)
    assert choose([base, wide, narrow_worse]) is wide
    same_rows = r("3@0.2,1", [1.0] * 80 + [0.0] * 20, 0.95, 36)
    assert choose([base, same_rows, wide]) is wide                   # the same cost: the more accurate


def test_a_difference_of_exactly_one_standard_error_is_within_it_despite_rounding():
    from training.guidance_interval import choose
    from training.sampler_table import paired_difference

    n = 284                                                        # the judge stage's 284 images
    base_correct = [1.0] * 250 + [0.0] * 34
    narrow_correct = base_correct[:]
    narrow_correct[0:3] = [0.0] * 3                                # three broken
    narrow_correct[n - 1] = 1.0                                    # one fixed
    diff, se = paired_difference(narrow_correct, base_correct)
    assert abs(diff + 2 / n) < 1e-15 and abs(se - 2 / n) < 1e-15 and diff + se < 0   # exactly -SE, rounded below it
    narrow = dict(label="2@0.4,1", accuracy=sum(narrow_correct) / n, fd=0.95, acc_diff=diff, acc_diff_se=se,
                  fd_ratio=0.95, fd_ratio_se=0.01, network_rows=33, correct=narrow_correct)
    base = dict(label="2@0,1", accuracy=sum(base_correct) / n, fd=1.0, acc_diff=0.0, acc_diff_se=0.0, fd_ratio=1.0,
                fd_ratio_se=0.0, network_rows=40, correct=base_correct)
    assert choose([base, narrow]) is narrow


def test_guidance_without_a_null_class_is_refused():
    model = tiny(class_dropout=0.0)
    with pytest.raises(ValueError, match="null class"):
        sample(model, [1], steps=2, schedule=Schedule("cosine"), input_scale=1.0, prediction="eps", guidance=2.0)


@pytest.mark.parametrize("override, message", [
    ("model.patch_size=5", "does not divide"),
    ("model.num_latents=0", "num_latents must be > 0"),
    ("model.latent_dim=-4", "latent_dim must be > 0"),
    ("input_scale=0", "input_scale must be > 0"),
    ("input_scale=-1", "input_scale must be > 0"),
    ("train_schedule=cosine@1,0,1", "schedule"),
    ("prediction=noise", "prediction"),
    ("class_parts_lr=0", "class_parts_lr must be > 0"),
    ("no_such_key=1", "unknown config keys"),
])
def test_bad_configs_stop_with_one_clear_message(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_unwritable_output_and_missing_dataset_stop_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not writable"):
        check_writable(str(blocker / "out"))
    with pytest.raises(DatasetError, match="image folder not found"):
        load_dataset(str(tmp_path / "missing"), "train", 64, 1)


def test_train_command_refuses_bad_config_without_touching_models(tmp_path, capsys):
    from training.train import main
    out = tmp_path / "run"
    rc = main(["--set", "model.patch_size=7", "--set", f"out_dir={out}"])
    assert rc == 2 and "does not divide" in capsys.readouterr().err
    assert not out.exists()


def test_image_folder_loader_reads_class_subfolders(tmp_path):
    from PIL import Image
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (40, 30), (i * 100, 50, 200)).save(tmp_path / cls / f"{i}.png")
    images, labels, names = load_dataset(str(tmp_path), "train", 32, 3)
    assert names == ["cats", "dogs"] and images.shape == (4, 3, 32, 32) and labels.tolist() == [0, 0, 1, 1]
    x = to_model_input(images, 64, 1)
    assert x.shape == (4, 1, 64, 64) and x.min() >= -1 and x.max() <= 1


def test_train_config_defaults_are_valid():
    TrainConfig().validate()


def test_files_over_the_size_limit_store_large_weights_as_half(tmp_path, monkeypatch):
    import training.export as export
    monkeypatch.setattr(export, "MAX_FILE_MB", 0.01)
    monkeypatch.setattr(export, "HALF_MIN_ELEMENTS", 1000)
    model = tiny().eval()
    meta = metadata(model, name="t", prediction="eps", input_scale=1.0, normalize_input=True,
                    train_schedule="cosine", dataset="none", train_steps=0, trained=False)
    path = str(tmp_path / "half.onnx")
    export_onnx(model, path, meta)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    halves = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert halves and sum(n.op_type == "Cast" for n in proto.graph.node) >= len(halves)
    assert "float16" in read_metadata(path)["rin.storage"]


def test_larger_patches_start_from_the_small_model_by_nearest_upsampling(tmp_path):
    from training.train import init_from_checkpoint
    small = tiny()                                                   # 16 px, patch 4: a 4 x 4 grid
    path = str(tmp_path / "small.pt")
    torch.save({"ema": small.state_dict(),
                "config": {"model": small.cfg.to_dict(), "prediction": "x", "input_scale": 1.0}}, path)
    big = tiny(resolution=64, patch_size=16)                         # same grid, f = 4
    taken = init_from_checkpoint(big, path, input_scale=0.25)
    assert {"patch_embed.weight", "out.weight", "out.bias", "latents"} <= set(taken)
    x = torch.randn(2, 1, 16, 16)
    up = x.repeat_interleave(4, -1).repeat_interleave(4, -2)
    stem = lambda m, v: torch.nn.functional.conv2d(v, m.patch_embed.weight, stride=m.cfg.patch_size)
    assert torch.allclose(stem(big, up), 4 * stem(small, x), atol=1e-4)  # block sums / f = f x old
    h = torch.randn(5, 32)
    old = small.out(h).reshape(5, 4, 4)
    new = big.out(h).reshape(5, 16, 16)
    want = old.repeat_interleave(4, 1).repeat_interleave(4, 2) * 0.25  # target b x, b 1 -> 0.25
    assert torch.allclose(new, want, atol=1e-6)


def test_overlap_head_is_a_partition_of_unity_up_to_the_border():
    """Windows that all predict the same value give that value everywhere: no seam, no dark border."""
    for kw in (dict(resolution=16, patch_size=4), dict(resolution=64, patch_size=16, head_resolution=16)):
        model = tiny(head="overlap", **kw).eval()
        with torch.no_grad():
            model.out.weight.zero_()
            model.out.bias.fill_(0.37)
            pred, _ = model(torch.randn(2, 1, kw["resolution"], kw["resolution"]), torch.full((2,), 0.5),
                            torch.tensor([1, 2]), torch.zeros(2, 8, 32))
        assert pred.shape == (2, 1, kw["resolution"], kw["resolution"])
        assert torch.allclose(pred, torch.full_like(pred, 0.37), atol=1e-6)


def test_overlap_head_blends_neighbours_instead_of_jumping():
    """Two neighbouring tokens that disagree by d meet in a ramp of steps <= d / q, never one jump of d."""
    model = tiny(head="overlap").eval()                              # 16 px, 4 x 4 grid, q = 4
    windows = torch.zeros(1, 16, 64)
    windows[0, :, :] = torch.tensor([0.0, 1.0, 0.0, 1.0]).repeat(4)[:, None]  # columns alternate 0, 1
    img = model.overlap_output(windows)[0, 0]
    steps = (img[:, 1:] - img[:, :-1]).abs()
    assert steps.max() <= 1 / 4 + 1e-6
    assert img.min() >= 0 and img.max() <= 1


@pytest.mark.parametrize("bad, message", [
    (dict(head="tiles"), "head must be patch or overlap"),
    (dict(head="overlap", head_resolution=12), "head_resolution 12"),
    (dict(head="patch", head_resolution=8), "overlap head only"),
])
def test_bad_head_configs_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        RINConfig(**{**TINY.to_dict(), **bad}).validate()


def test_carried_model_is_the_trunk_seen_at_a_larger_resolution(tmp_path):
    """training.carry: on an input that is the trunk's input spread over f x f blocks (the mean of a
    block is what the stem reads), the big model predicts the trunk's x0 resized to R, times 1/f."""
    from training.carry import carry
    trunk = tiny(head="overlap")                                     # 16 px, patch 4
    with torch.no_grad():
        trunk.out.weight.normal_(0, 0.3)
        trunk.selfcond_out.weight.normal_(0, 0.5)
    path = str(tmp_path / "trunk.pt")
    cfg = dict(model=trunk.cfg.to_dict(), prediction="x", input_scale=1.0, normalize_input=False, name="tiny-16",
               batch_size=4)
    torch.save(dict(ema=trunk.state_dict(), config=cfg, step=3, elapsed=1.0, history=[0.5]), path)
    big, state = carry(path, 64)                                     # f = 4
    assert state["config"]["input_scale"] == 0.25 and big.cfg.patch_size == 16 and state["config"]["name"] == "tiny-64"
    x = torch.randn(2, 1, 16, 16)
    args = (torch.tensor([0.3, 0.9]), torch.tensor([3, 10]), torch.randn(2, 8, 32))
    with torch.no_grad():
        small_pred, small_lat = trunk.eval()(x, *args)
        big_pred, big_lat = big(x.repeat_interleave(4, -1).repeat_interleave(4, -2) / 4, *args)
    want = torch.nn.functional.interpolate(small_pred, size=(64, 64), mode="bilinear", align_corners=False) / 4
    assert torch.allclose(big_pred, want, atol=1e-5)
    assert torch.allclose(big_lat, small_lat, atol=1e-5)
    cfg["normalize_input"] = True
    torch.save(dict(ema=trunk.state_dict(), config=cfg, step=3, elapsed=1.0, history=[]), path)
    with pytest.raises(ValueError, match="stem_bias"):
        carry(path, 64)


def test_a_trunk_with_a_bias_free_stem_carries_exactly_under_variance_normalization(tmp_path):
    """normalize_input: the big model divides its x_t by a different std than the trunk; the bias-free
    stem's LayerNorm removes that factor, so the carried model still predicts the trunk's x0 at R."""
    from training.carry import carry
    from training.diffusion import normalize
    trunk = tiny(head="overlap", stem_bias=False)
    with torch.no_grad():
        trunk.out.weight.normal_(0, 0.3)
    path = str(tmp_path / "trunk.pt")
    cfg = dict(model=trunk.cfg.to_dict(), prediction="x", input_scale=0.5, normalize_input=True, name="tiny-16",
               batch_size=4)
    torch.save(dict(ema=trunk.state_dict(), config=cfg, step=3, elapsed=1.0, history=[0.5]), path)
    big, state = carry(path, 64)
    assert state["config"]["normalize_input"] and state["config"]["input_scale"] == 0.125
    small_x = torch.randn(2, 1, 16, 16) * 3 + 1                       # the trunk's x_t
    # Noise within each 4 x 4 block, zero-mean there: the block means (what the stem reads) stay small_x / 4,
    # but the std that normalization divides by is not the trunk's.
    within = torch.randn(2, 1, 64, 64)
    within = within - torch.nn.functional.avg_pool2d(within, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    big_x = small_x.repeat_interleave(4, -1).repeat_interleave(4, -2) / 4 + within
    args = (torch.tensor([0.3, 0.9]), torch.tensor([3, 10]), torch.randn(2, 8, 32))
    with torch.no_grad():
        small_pred, _ = trunk.eval()(normalize(small_x), *args)
        big_pred, _ = big(normalize(big_x), *args)
    want = torch.nn.functional.interpolate(small_pred, size=(64, 64), mode="bilinear", align_corners=False) / 4
    assert torch.allclose(big_pred, want, atol=1e-4)


def test_min_snr_weights_the_implied_x0_error_alike_in_every_parameterization():
    from training.diffusion import loss_weights
    g = torch.tensor([0.5, 0.9, 0.99])                               # SNR 1, 9, 99
    assert loss_weights(g, "x", "none") is None
    assert torch.allclose(loss_weights(g, "x", "min_snr@5"), torch.tensor([1.0, 5.0, 5.0]))
    assert torch.allclose(loss_weights(g, "eps", "min_snr@5") * torch.tensor([1.0, 9.0, 99.0]), torch.tensor([1.0, 5, 5]))
    assert torch.allclose(loss_weights(g, "v", "min_snr@5") * torch.tensor([2.0, 10.0, 100.0]), torch.tensor([1.0, 5, 5]))
    with pytest.raises(ValueError, match="loss_weight"):
        loss_weights(g, "x", "snr")


def test_blockiness_sees_tiles_and_passes_smooth_images():
    from training.classifier import Blockiness
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(64, 1, 28, 28), size=(64, 64), mode="bilinear",
                                             align_corners=False)
    tiles = torch.rand(64, 1, 8, 8).repeat_interleave(8, -1).repeat_interleave(8, -2)  # 8 px tiles
    b_smooth, b_tiles = Blockiness(), Blockiness()
    b_smooth.add(smooth)
    b_tiles.add(tiles * 0.5 + smooth * 0.5)
    assert b_smooth.value() < 1.15
    assert b_tiles.value() > 3


def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_shift():
    from training.classifier import frechet_distance
    torch.manual_seed(0)
    a = torch.randn(2000, 8, dtype=torch.float64)
    assert abs(frechet_distance(a, a)) < 1e-6
    assert abs(frechet_distance(a, a + 1.0) - 8.0) < 1e-3           # |mu shift|^2 = 8, same covariance


def test_default_guidance_is_the_most_accurate_weight_within_the_fd_bound():
    from training.export import choose_guidance
    sweep = [dict(guidance=0.0, accuracy=0.80, fd=2.0, real_fd=1.0), dict(guidance=1.0, accuracy=0.90, fd=2.5, real_fd=1.0),
             dict(guidance=3.0, accuracy=0.95, fd=3.5, real_fd=1.0)]
    assert choose_guidance(sweep) == 1.0
    assert choose_guidance([dict(r, real_fd=0.1) for r in sweep]) == 0.0  # none within: the smallest FD


def test_head_lattice_renders_a_lattice_image_exactly_as_the_data_was_made():
    """With head_lattice 28, a head image that is a 28 px image resized to head_resolution comes out as
    that 28 px image resized straight to R: no pattern of the intermediate resize."""
    from training.model import upsampler
    model = tiny(resolution=64, patch_size=16, head="overlap", head_resolution=16, head_lattice=12)
    x12 = torch.randn(3, 1, 12, 12)
    head = upsampler(12, 16) @ x12 @ upsampler(12, 16).T
    assert torch.allclose(model.upsample @ head @ model.upsample.T, upsampler(12, 64) @ x12 @ upsampler(12, 64).T,
                          atol=1e-5)
    with pytest.raises(ValueError, match="head_lattice 20"):
        RINConfig(**{**TINY.to_dict(), "head": "overlap", "head_lattice": 20}).validate()


def test_folder_judge_scores_real_images_like_real_images(tmp_path):
    """classifier folder: the CLI's file names give the classes; real test images saved that way score
    as real images do (same accuracy, FD at the floor's scale, no seams)."""
    from PIL import Image
    from training.classifier import judge_folder
    from training.data import load_fashion_mnist
    x, y, _ = load_fashion_mnist("test")
    for c in range(10):
        for i, k in enumerate(torch.nonzero(y == c).flatten()[-6:].tolist()):   # not the floor's first images
            Image.fromarray(x[k, 0].numpy()).resize((64, 64), Image.BILINEAR).save(tmp_path / f"s-c{c}-{i}.png")
    r = judge_folder(str(tmp_path))
    assert r["samples"] == 60 and r["resolution"] == 64
    assert r["accuracy"] >= 0.8
    assert r["fd"] < 3 * r["real_fd"]
    assert r["blockiness"] < 1.15


def test_a_record_judged_elsewhere_is_taken_only_for_a_model_carried_from_the_trunk_it_names(tmp_path):
    """training.slim keeps what carry reads; export --judged takes a --record's figures into the file's
    metadata for a model carried from the same trunk file to the same resolution, and refuses others."""
    from training.carry import carry, file_sha256
    from training.export import checkpoint_identity, main as export_main
    from training.slim import slim
    trunk = tiny(head="overlap")
    cfg = dict(model=trunk.cfg.to_dict(), prediction="x", input_scale=1.0, normalize_input=False, name="tiny-16",
               batch_size=4, train_schedule="cosine", dataset="fashion-mnist")
    full, small = str(tmp_path / "ckpt.pt"), str(tmp_path / "trunk.pt")
    torch.save(dict(ema=trunk.state_dict(), model=trunk.state_dict(), opt={"state": {}}, config=cfg, step=3,
                    elapsed=1.0, history=[0.5] * 300), full)
    kept = slim(full, small)
    assert set(kept) == {"ema", "config", "step", "elapsed", "history"} and len(kept["history"]) == 200
    _, state = carry(small, 32)
    carried = str(tmp_path / "carried.pt")
    torch.save(state, carried)
    record = dict(resolution=32, guidance=2.0, samples=10, accuracy=0.9, fd=1.5, real_fd=1.0, blockiness=1.05,
                  real_accuracy=0.9, real_blockiness=1.0, sweep=[], checkpoint=checkpoint_identity(state, carried))
    assert record["checkpoint"] == dict(trunk_sha256=file_sha256(small), lattice=0, resolution=32)
    judged = tmp_path / "judged.json"
    judged.write_text(json.dumps(record))
    out = str(tmp_path / "m.onnx")
    assert export_main([carried, out, "--judged", str(judged), "--float32"]) == 0
    meta = read_metadata(out)
    assert (meta["rin.class_accuracy"], meta["rin.default_guidance"], meta["rin.fd"]) == ("0.9000", "2", "1.5000")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(record, checkpoint=dict(record["checkpoint"], trunk_sha256="0" * 64))))
    assert export_main([carried, str(tmp_path / "n.onnx"), "--judged", str(other)]) == 2
    assert not os.path.exists(tmp_path / "n.onnx")


def test_a_fine_tuned_models_record_names_the_very_file_and_figures_can_be_written_in_afterwards(tmp_path):
    """A GPU run's weights (training.slim --half) are judged there on the file that comes back; export --judged
    takes the record only for that file. Figures measured later through the C# sampler go into an exported
    file's metadata with annotate, its graph untouched."""
    import onnx
    from training.carry import file_sha256
    from training.export import annotate, judged_metadata, main as export_main
    from training.slim import slim
    model = tiny(head="overlap")
    cfg = dict(model=model.cfg.to_dict(), prediction="x", input_scale=0.5, normalize_input=True, name="tiny-16",
               batch_size=4, train_schedule="cosine", dataset="glyphs")
    full, half = str(tmp_path / "ckpt.pt"), str(tmp_path / "gpu.pt")
    torch.save(dict(ema=model.state_dict(), config=cfg, step=3, elapsed=1.0, history=[0.5]), full)
    slim(full, half, half=True)
    assert torch.load(half)["ema"]["out.weight"].dtype == torch.float16
    record = dict(resolution=16, guidance=3.0, samples=4, accuracy=0.75, fd=2.0, real_fd=1.0, edge_width=1.2,
                  real_edge_width=0.6, real_accuracy=1.0, sweep=[], checkpoint=dict(sha256=file_sha256(half)))
    judged = tmp_path / "judged.json"
    judged.write_text(json.dumps(record))
    out = str(tmp_path / "m.onnx")
    assert export_main([half, out, "--judged", str(judged)]) == 0
    meta = read_metadata(out)
    assert (meta["rin.default_guidance"], meta["rin.edge_width"], meta["rin.edge_width_real"]) == ("3", "1.2000", "0.6000")
    assert "rin.blockiness" not in meta
    judged.write_text(json.dumps(dict(record, checkpoint=dict(sha256="0" * 64))))
    assert export_main([half, str(tmp_path / "n.onnx"), "--judged", str(judged)]) == 2
    graph = onnx.load(out).graph.SerializeToString()
    annotate(out, judged_metadata(dict(record, accuracy=0.5)))
    assert read_metadata(out)["rin.class_accuracy"] == "0.5000" and read_metadata(out)["rin.name"] == "tiny-16"
    assert onnx.load(out).graph.SerializeToString() == graph


def test_a_continuation_counts_the_steps_behind_the_weights_it_starts_from_and_the_file_says_so(tmp_path):
    """rin.train_steps is every optimizer step behind the weights: a run started from another's checkpoint
    (init_from) adds its own steps to the chain's, through training.slim and training.export alike."""
    from PIL import Image
    from training.export import main as export_main
    from training.slim import slim
    from training.train import train, trained_steps
    data = tmp_path / "data"
    for i in range(TINY.num_classes):
        (data / f"c{i}").mkdir(parents=True)
        Image.new("L", (16, 16), i * 20).save(data / f"c{i}" / "0.png")

    def run(name, steps, init_from=""):
        cfg = load_config(None, [f"model.{k}={json.dumps(v)}" for k, v in TINY.to_dict().items() if k != "class_names"]
                          + [f"dataset={data}", f"out_dir={tmp_path / name}", f"name={name}", f"steps={steps}",
                             "batch_size=2", "sample_every=0", "sample_steps=2", f"init_from={init_from}"])
        summary = train(cfg, "cpu", quiet=True)
        return summary, torch.load(tmp_path / name / "ckpt.pt")

    first, state = run("first", 3)
    assert (first["steps"], first["steps_in_all"], trained_steps(state)) == (3, 3, 3)
    slim(str(tmp_path / "first" / "ckpt.pt"), str(tmp_path / "first.pt"), half=True)
    second, state = run("second", 2, init_from=str(tmp_path / "first.pt"))
    assert (second["steps"], second["steps_in_all"], state["step"], trained_steps(state)) == (2, 5, 2, 5)
    slim(str(tmp_path / "second" / "ckpt.pt"), str(tmp_path / "second.pt"))
    third, _ = run("third", 1, init_from=str(tmp_path / "second.pt"))
    assert third["steps_in_all"] == 6
    out = str(tmp_path / "m.onnx")
    assert export_main([str(tmp_path / "third" / "ckpt.pt"), out, "--float32"]) == 0
    assert read_metadata(out)["rin.train_steps"] == "6"


def test_export_stores_a_guidance_interval_and_refuses_a_bad_one(tmp_path):
    from PIL import Image
    from training.export import main as export_main
    from training.train import train
    data = tmp_path / "data"
    for i in range(TINY.num_classes):
        (data / f"c{i}").mkdir(parents=True)
        Image.new("L", (16, 16), i * 20).save(data / f"c{i}" / "0.png")
    cfg = load_config(None, [f"model.{k}={json.dumps(v)}" for k, v in TINY.to_dict().items() if k != "class_names"]
                      + [f"dataset={data}", f"out_dir={tmp_path / 'run'}", "name=run", "steps=1", "batch_size=2",
                         "sample_every=0", "sample_steps=2"])
    train(cfg, "cpu", quiet=True)
    ckpt, out = str(tmp_path / "run" / "ckpt.pt"), str(tmp_path / "m.onnx")
    assert export_main([ckpt, out, "--float32", "--guidance", "2", "--guidance-interval", "0.4,1"]) == 0
    meta = read_metadata(out)
    assert (meta["rin.default_guidance"], meta["rin.guidance_interval"]) == ("2", "0.4,1")
    bad = str(tmp_path / "bad.onnx")
    assert export_main([ckpt, bad, "--float32", "--guidance-interval", "1,0.4"]) == 2
    assert not os.path.exists(bad)


def test_class_parts_train_shared_marks_and_fold_into_a_plain_model_that_draws_the_same(tmp_path):
    """class_parts: a base-letter and a mark embedding shared across classes, added to each class's own. The run
    saves the EMA as a plain RIN (the parts folded into class_embed), so export, carry and init_from see no change,
    and a plain model loaded with it predicts exactly what the model with its parts predicts."""
    from PIL import Image
    from training.glyphs import char_of, class_name
    from training.model import ClassParts, inference_state
    from training.train import train
    chars = ["A", "\u00C0", "\u00C1", "E", "\u00C8", "\u00C9", "a", "\u00E0", "\u0141", "!"]
    data = tmp_path / "data"
    for i, ch in enumerate(chars):
        (data / class_name(ch)).mkdir(parents=True)
        Image.new("L", (16, 16), i * 20).save(data / class_name(ch) / "0.png")

    def config(name, *extra):
        return load_config(None, [f"model.{k}={json.dumps(v)}" for k, v in TINY.to_dict().items() if k != "class_names"]
                           + [f"dataset={data}", f"out_dir={tmp_path / name}", f"name={name}", "steps=3",
                              "batch_size=4", "sample_every=0", "sample_steps=2", "class_parts=true", *extra])

    train(config("parts"), "cpu", quiet=True)
    state = torch.load(tmp_path / "parts" / "ckpt.pt")
    assert not any(k.startswith("class_parts.") for k in state["ema"])
    names = sorted(k for k in state["model"] if k.startswith("class_parts."))
    assert names == ["class_parts.base.weight", "class_parts.base_of", "class_parts.mark.weight", "class_parts.mark_of"]
    # The grave of A, E and a is one row, A is the base of its marked forms, L with stroke has no parts but its own,
    # and the mark rows moved from zero: they trained.
    at = {char_of(n): i for i, n in enumerate(state["config"]["model"]["class_names"])}
    mark, base = state["model"]["class_parts.mark_of"].tolist(), state["model"]["class_parts.base_of"].tolist()
    assert mark[at["\u00C0"]] == mark[at["\u00C8"]] == mark[at["\u00E0"]] != mark[at["\u00C1"]] == mark[at["\u00C9"]]
    assert mark[at["A"]] == mark[at["\u0141"]] == 0 and mark[at["\u00C0"]] > 0
    assert (base[at["\u00C1"]], base[at["\u00E0"]], base[at["\u0141"]]) == (at["A"], at["a"], at["\u0141"])
    assert state["model"]["class_parts.mark.weight"].abs().sum() > 0
    # Fold: a plain model with inference_state draws what the model with its parts draws.
    torch.manual_seed(1)
    model = tiny()
    model.class_parts = ClassParts([0, 0, 0, 3, 3, 3, 6, 6, 8, 9], [0, 1, 2, 0, 1, 2, 0, 1, 0, 0], 2,
                                   model.class_embed.num_embeddings, model.cfg.latent_dim)
    for p in model.class_parts.parameters():
        torch.nn.init.normal_(p)
    groups = param_groups(model, 0.01, 10.0)       # the parts learn at their own rate, no decay, no trust ratio
    assert [g.get("lr_scale", 1.0) for g in groups] == [1.0, 1.0, 10.0]
    assert {id(p) for p in groups[2]["params"]} == {id(p) for p in model.class_parts.parameters()}
    assert (groups[2]["weight_decay"], groups[2]["adapt"]) == (0.0, False) and len(param_groups(tiny(), 0.01)) == 2
    plain = tiny()
    plain.load_state_dict(inference_state(model))
    x, gamma = torch.randn(11, 1, 16, 16), torch.rand(11)
    ids, latents = torch.arange(11), torch.randn(11, model.cfg.num_latents, model.cfg.latent_dim)
    with torch.no_grad():
        for a, b in zip(model(x, gamma, ids, latents), plain(x, gamma, ids, latents)):
            assert torch.allclose(a, b, atol=1e-5)
    # A continuation starts from the folded weights with fresh, zero parts, and a run resumes with its own.
    train(config("next", f"init_from={tmp_path / 'parts' / 'ckpt.pt'}"), "cpu", quiet=True)
    assert train(config("next", "steps=4"), "cpu", quiet=True)["steps"] == 4
    # Class names that are not glyphs' have no parts: refused with the name.
    plain_data = tmp_path / "plain"
    for i in range(TINY.num_classes):
        (plain_data / f"c{i}").mkdir(parents=True)
        Image.new("L", (16, 16), i * 20).save(plain_data / f"c{i}" / "0.png")
    with pytest.raises(ValueError, match="'c0' is not a glyph class name"):
        train(config("bad", f"dataset={plain_data}"), "cpu", quiet=True)
