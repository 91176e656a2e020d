"""The rule that picks a model's default sampler and steps from the sampler table (training.sampler_table.choose)."""
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
