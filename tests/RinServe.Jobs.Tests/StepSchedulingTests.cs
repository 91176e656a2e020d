using RinServe.Diffusion;

namespace RinServe.Jobs.Tests;

/// <summary>The worker's step-level policy: who joins, which model steps next, and the previews of every image.</summary>
public class StepSchedulingTests
{
    private static HeldJob Job(string id, int count, float guidance = 0f, int steps = 20) =>
        new(new LeasedJob(new JobRecord(id, new JobSpec("m", steps, "ddim", "cosine", guidance, 1, 7, count, "png", null),
            JobState.Running, DateTimeOffset.UnixEpoch, null, null, 0, null, null, 0, 1), id));

    [Fact]
    public void A_job_joins_while_both_caps_leave_room_and_one_larger_than_the_row_cap_runs_alone()
    {
        var lane = new ModelLane("m", null!); // no engine: nothing here steps
        var big = Job("big", 5, guidance: 2f); // 10 network rows
        Assert.True(lane.Fits(big, maxJobs: 4, maxRows: 8)); // alone: rather than never
        Assert.Equal(4, lane.Room(maxJobs: 4, maxRows: 8));

        lane.Running.Add(Job("a", 3)); // 3 rows
        Assert.True(lane.Fits(Job("b", 5), 4, 8));
        Assert.False(lane.Fits(Job("c", 3, guidance: 1f), 4, 8)); // 3 + 6 > 8
        Assert.False(lane.Fits(big, 4, 8));
        Assert.Equal(3, lane.Room(4, 8)); // three more jobs at most
        Assert.Equal(1, lane.Room(2, 8)); // the job cap

        lane.Waiting.Add(big);
        Assert.Equal(0, lane.Room(4, 8)); // nothing more is taken while one waits
    }

    [Fact]
    public void Under_a_row_cap_a_step_takes_whole_jobs_in_turn_so_each_advances_and_without_one_all()
    {
        var lane = new ModelLane("m", null!); // no engine: nothing here steps
        HeldJob a = Job("a", 1, guidance: 2f), b = Job("b", 1, guidance: 2f), c = Job("c", 2); // 2 network rows each
        lane.Running.AddRange([a, b, c]);
        string[] Stepped(int cap)
        {
            lane.Gather(cap);
            return [.. lane.Stepped.Select(j => j.Id)];
        }
        Assert.Equal(["a"], Stepped(3));
        Assert.Equal(["b"], Stepped(3));
        Assert.Equal(["c"], Stepped(3));
        Assert.Equal(["a", "b"], Stepped(4));
        Assert.Equal(["c"], Stepped(1)); // a job larger than the cap still steps, alone
        Assert.Equal(["a", "b", "c"], Stepped(int.MaxValue));
        Assert.Equal(6, lane.SteppedRows);

        lane.Observe(TimeSpan.FromMilliseconds(80), 8);
        lane.Observe(TimeSpan.FromMilliseconds(20), 2);
        Assert.Equal(0.010, lane.SecondsPerRow, 9); // seconds per row, a moving average
    }

    [Fact]
    public void The_busy_model_charged_least_steps_next_so_cheap_steps_interleave_with_dear_ones()
    {
        var share = new FairShare();
        Assert.Null(share.Next());
        share.SetBusy("1024", true);
        share.SetBusy("64", true);
        var order = new List<string>();
        for (var i = 0; i < 18; i++)
        {
            var next = share.Next()!;
            order.Add(next);
            share.Charge(next, TimeSpan.FromSeconds(next == "1024" ? 0.5 : 0.0625)); // exact in binary: ties are ties
        }
        // Eight 64 px steps per 1024 px step, eight times dearer: equal time, and a 64 px request of 8 steps waits for one big step at most.
        string[] round = ["1024", .. Enumerable.Repeat("64", 8)];
        Assert.Equal([.. round, .. round], order);
        Assert.Equal(share.Charged("1024"), share.Charged("64"), 6);
    }

    [Fact]
    public void A_model_that_was_idle_starts_at_the_least_charge_of_the_busy_ones_and_earns_no_burst_and_owes_nothing()
    {
        var share = new FairShare();
        share.SetBusy("a", true);
        share.Charge("a", TimeSpan.FromSeconds(10));
        share.SetBusy("b", true); // was idle for all of a's 10 s
        Assert.Equal(10, share.Charged("b"), 6);
        share.SetBusy("a", false);
        Assert.Equal("b", share.Next());
        share.SetBusy("b", false);
        Assert.Null(share.Next());

        // b then has the sampler to itself for 20 s (nobody waits for it); when a comes back while b is busy, and b
        // comes back while a is, each starts level with the other: the time alone is no debt.
        share.SetBusy("b", true);
        share.Charge("b", TimeSpan.FromSeconds(20));
        share.SetBusy("b", false);
        share.SetBusy("a", true);
        share.SetBusy("b", true);
        Assert.Equal(share.Charged("a"), share.Charged("b"), 6);
        Assert.Equal("a", share.Next()); // busy longest on a tie
    }

    [Fact]
    public void Short_work_goes_first_and_is_charged_so_a_dear_model_is_not_shut_out()
    {
        var share = new FairShare(TimeSpan.FromSeconds(0.125));
        share.SetBusy("1024", true);
        share.SetWorkLeft("1024", 4.0);
        share.SetBusy("64", true); // a 64 px request arrives: 3 steps of 1/32 s
        var order = new List<string>();
        var steps64 = 3;
        share.SetWorkLeft("64", steps64 * 0.03125);
        for (var i = 0; i < 6; i++)
        {
            var next = share.Next()!;
            order.Add(next);
            share.Charge(next, TimeSpan.FromSeconds(next == "1024" ? 0.5 : 0.03125));
            if (next == "64")
            {
                share.SetWorkLeft("64", --steps64 * 0.03125);
                share.SetBusy("64", steps64 > 0);
            }
        }
        // Its 3 steps in one go (under the bound and not ahead), then the dear model has the sampler again.
        Assert.Equal(["64", "64", "64", "1024", "1024", "1024"], order);

        // A stream of short jobs (always a little work left) runs at most the bound ahead, then shares time equally.
        share.SetBusy("64", true);
        share.SetWorkLeft("64", 0.0625);
        var time = new Dictionary<string, double> { ["64"] = 0, ["1024"] = 0 };
        for (var i = 0; i < 400; i++)
        {
            var next = share.Next()!;
            var cost = next == "1024" ? 0.5 : 0.03125;
            time[next] += cost;
            share.Charge(next, TimeSpan.FromSeconds(cost));
        }
        Assert.InRange(share.Charged("64") - share.Charged("1024"), -0.5, 0.125 + 0.03125);
        Assert.InRange(time["64"] / time["1024"], 0.8, 1.25);
    }

    [Fact]
    public void The_least_work_left_goes_first_even_above_the_bound_until_it_is_the_bound_ahead()
    {
        var share = new FairShare(TimeSpan.FromSeconds(0.125));
        share.SetBusy("1024", true);
        share.SetWorkLeft("1024", 4.0);
        share.SetBusy("64", true); // a burst of 64 px requests: 8 steps of 1/32 s, 0.25 s of work, twice the bound
        var steps64 = 8;
        share.SetWorkLeft("64", steps64 * 0.03125);
        Assert.True(share.LeastWorkLeft("64"));
        Assert.False(share.LeastWorkLeft("1024"));
        var order = new List<string>();
        while (steps64 > 0)
        {
            var next = share.Next()!;
            order.Add(next);
            share.Charge(next, TimeSpan.FromSeconds(next == "1024" ? 0.0625 : 0.03125));
            if (next == "64")
            {
                share.SetWorkLeft("64", --steps64 * 0.03125);
            }
        }
        // Four steps in one go (the bound's worth: 0.125 s ahead), then equal time: one dear step for two cheap ones.
        Assert.Equal(["64", "64", "64", "64", "1024", "64", "64", "1024", "64", "64"], order);

        // A model whose work left is not known yet (no step measured) gets its first step from the fair share, even
        // beside one with little work left: nobody can tell yet which is shorter.
        var fresh = new FairShare(TimeSpan.FromSeconds(0.125));
        fresh.SetBusy("tiny", true);
        fresh.SetWorkLeft("tiny", 0.01);
        fresh.Charge("tiny", TimeSpan.FromSeconds(0.001));
        fresh.SetBusy("new", true);
        fresh.SetWorkLeft("new", double.PositiveInfinity);
        fresh.Charge("tiny", TimeSpan.FromSeconds(0.001));
        Assert.Equal("new", fresh.Next());
    }

    [Fact]
    public void Without_a_bound_or_a_measure_of_the_work_left_nothing_goes_first()
    {
        foreach (var (bound, workLeft) in new[] { (0.0, 0.01), (0.125, double.PositiveInfinity) })
        {
            var share = new FairShare(TimeSpan.FromSeconds(bound));
            share.SetBusy("1024", true);
            share.SetWorkLeft("1024", 4.0);
            share.SetBusy("64", true);
            share.SetWorkLeft("64", workLeft);
            Assert.Equal("1024", share.Next()); // equal charges: the one busy longest
        }

        var lane = new ModelLane("m", null!); // no engine: nothing here steps
        lane.Running.Add(Job("a", 1, guidance: 2f, steps: 20)); // 2 rows x 20 steps left
        lane.Waiting.Add(Job("b", 3, steps: 10)); // 3 rows x 10 steps
        Assert.Equal(double.PositiveInfinity, lane.WorkLeft); // no step measured yet
        lane.Observe(TimeSpan.FromMilliseconds(20), 2);
        Assert.Equal(0.7, lane.WorkLeft, 9);
    }

    [Fact]
    public void Previews_are_asked_every_k_steps_but_the_last_and_come_as_one_tile_of_every_image()
    {
        using var job = Job("j", 3);
        Assert.DoesNotContain(Enumerable.Range(1, 20), job.WantsPreview);
        job.PreviewEvery = 5;
        Assert.Equal([5, 10, 15], Enumerable.Range(1, 20).Where(job.WantsPreview));

        job.TakePreview(0, new GeneratedImage(2, 1, 1, [1, 2]));
        job.TakePreview(2, new GeneratedImage(2, 1, 1, [5, 6]));
        Assert.Null(job.ClaimPreview()); // not every image made one
        job.TakePreview(1, new GeneratedImage(2, 1, 1, [3, 4]));
        var tile = job.ClaimPreview()!;
        // Three images: two columns, two rows; the fourth cell is black.
        Assert.Equal((4, 2, 1), (tile.Width, tile.Height, tile.Channels));
        Assert.Equal([1, 2, 3, 4, 5, 6, 0, 0], tile.Pixels);
        Assert.Null(job.ClaimPreview()); // claimed once
    }

    [Fact]
    public void A_tile_keeps_the_channels_of_colour_previews()
    {
        byte[] red = [255, 0, 0], blue = [0, 0, 255];
        var tile = PreviewTiles.Tile([new GeneratedImage(1, 1, 3, red), new GeneratedImage(1, 1, 3, blue)]);
        Assert.Equal((2, 1, 3), (tile.Width, tile.Height, tile.Channels));
        Assert.Equal([255, 0, 0, 0, 0, 255], tile.Pixels);
    }
}
