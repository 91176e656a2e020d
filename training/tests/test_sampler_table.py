"""The rule that picks a model's default sampler and steps from the sampler table (training.sampler_table.choose)."""
import pytest

from training import sampler_table
from training.sampler_table import choose


def row(sampler, steps, correct, fd, fd_se):
    return dict(sampler=sampler, steps=steps, correct=correct, accuracy=sum(correct) / len(correct), fd=fd, fd_se=fd_se)


def test_the_fewest_steps_inside_both_bounds_win_and_the_yardstick_stays_eligible_when_its_fd_is_uncertain():
    same = [1.0, 0.0] * 50
    worse = [0.0] * 100
    base = row("ddim", 50, same, 1.0, 0.2)             # fd + se is 1.2x itself: it must still be a candidate
    assert choose([base]) is base
    cheap = row("dpmpp-2m", 10, same, 1.0, 0.05)        # same verdicts, FD within 10 % by its error
    assert choose([base, cheap]) is cheap
    wrong = row("dpmpp-2m", 8, worse, 1.0, 0.05)        # 50 points less accurate
    blurred = row("ddim", 10, same, 1.3, 0.05)          # FD 30 % higher
    assert choose([base, wrong, blurred]) is base


def test_a_paired_fd_bound_admits_a_row_whose_own_fd_error_is_wide_and_still_refuses_a_worse_one():
    same = [1.0, 0.0] * 50
    base = row("ddim", 50, same, 1.0, 0.2)
    close = row("ddim", 10, same, 1.05, 0.2)            # its own error (0.2) puts it over 1.10x: refused unpaired
    assert choose([base, close]) is base
    close.update(fd_ratio=1.05, fd_ratio_se=0.02)       # paired with the yardstick: 1.07 inside 1.10
    assert choose([base, close]) is close
    close.update(fd_ratio=1.09, fd_ratio_se=0.03)       # 1.12: outside by its paired error
    assert choose([base, close]) is base


def test_paired_fd_ratio_cancels_the_noise_the_two_rows_share():
    import torch
    from training.classifier import frechet_distance, gaussian
    from training.sampler_table import paired_fd_ratio
    gen = torch.Generator().manual_seed(0)
    reference = gaussian(torch.randn(4000, 8, generator=gen, dtype=torch.float64))
    shared = torch.randn(300, 8, generator=gen, dtype=torch.float64) * 1.3 + 0.2     # the draw both rows share
    base = shared
    other = shared + 0.05 * torch.randn(300, 8, generator=gen, dtype=torch.float64)  # the same images, a little apart
    ratio, se = paired_fd_ratio(other, base, reference)
    assert abs(ratio - frechet_distance(other, reference) / frechet_distance(base, reference)) < 1e-12
    # Unpaired, each FD's own spread over draws of images, as a fraction of the FD:
    picks = [torch.randint(300, (300,), generator=gen) for _ in range(200)]
    own = torch.tensor([frechet_distance(base[p], reference) for p in picks])
    assert se < 0.25 * (own.std() / own.mean()).item()
    assert paired_fd_ratio(base, base, reference) == (1.0, 0.0)


def test_apply_from_a_model_file_writes_its_sampler_choice_and_keeps_the_other_keys(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    from training.export import read_metadata

    def model(path, meta):
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        proto = helper.make_model(graph)
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(path))
        return str(path)

    source = model(tmp_path / "shipped.onnx", {"rin.default_sampler": "dpmpp-2m", "rin.default_steps": "15"})
    target = model(tmp_path / "new.onnx", {"rin.default_guidance": "2"})
    sampler_table.main(["apply", "--from", source, "--files", target])
    meta = read_metadata(target)
    assert (meta["rin.default_sampler"], meta["rin.default_steps"], meta["rin.default_guidance"]) == ("dpmpp-2m", "15", "2")

    bare = model(tmp_path / "bare.onnx", {})
    with pytest.raises(SystemExit):
        sampler_table.main(["apply", "--from", bare, "--files", target])
