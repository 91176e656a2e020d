using RinServe.Diffusion;

namespace RinServe.Jobs.Tests;

/// <summary>How jobs taken together become sampler batches: equal settings only, and bounded in network rows (issue 14, defect 7).</summary>
public sealed class BatchPlanTests
{
    private static LeasedJob Job(string id, int count, float guidance, int steps = 50) =>
        new(new JobRecord(id, new JobSpec("m", steps, "ddim", "cosine", guidance, 1, 0, count, "png", null),
            JobState.Queued, DateTimeOffset.UnixEpoch, null, null, 0, 1, null, 0, 0), id);

    private static string[][] Plan(int maxRows, params LeasedJob[] jobs) =>
        [.. BatchPlan.Split(jobs, maxRows).Select(b => b.Select(j => j.Id).ToArray())];

    [Fact]
    public void Guided_images_count_twice_against_the_row_limit()
    {
        // Four guided jobs of 4 images are 32 rows: under a limit of 8, one job per batch.
        Assert.Equal([["a"], ["b"], ["c"], ["d"]], Plan(8, Job("a", 4, 3), Job("b", 4, 3), Job("c", 4, 3), Job("d", 4, 3)));
        // Unguided, two fit.
        Assert.Equal([["a", "b"], ["c", "d"]], Plan(8, Job("a", 4, 0), Job("b", 4, 0), Job("c", 4, 0), Job("d", 4, 0)));
        // One image each, guided: 2 rows a job, four to a batch.
        Assert.Equal([["a", "b", "c", "d"]], Plan(8, Job("a", 1, 3), Job("b", 1, 3), Job("c", 1, 3), Job("d", 1, 3)));
    }

    [Fact]
    public void A_job_larger_than_the_limit_runs_alone_and_order_is_kept()
    {
        Assert.Equal([["a"], ["big"], ["b"]], Plan(2, Job("a", 1, 3), Job("big", 4, 3), Job("b", 1, 3)));
    }

    [Fact]
    public void Only_jobs_with_equal_settings_share_a_batch()
    {
        Assert.Equal([["a", "c"], ["b"]], Plan(8, Job("a", 1, 0), Job("b", 1, 0, steps: 20), Job("c", 1, 0)));
    }

    [Fact]
    public void Network_rows_are_images_doubled_by_guidance()
    {
        Assert.Equal(3, Job("a", 3, 0).Job.Spec.NetworkRows);
        Assert.Equal(6, Job("a", 3, 0.5f).Job.Spec.NetworkRows);
    }
}
