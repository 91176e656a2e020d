using RinServe.Diffusion;

namespace RinServe.Jobs.Tests;

public class BatchPreviewsTests
{
    private static JobSpec Spec(int count) => new("m", 20, "ddim", "cosine", 0f, 1, 7, count, "png", null);

    [Fact]
    public void Batch_previews_want_the_first_image_of_each_job_whose_watchers_asked_every_k_steps_but_the_last()
    {
        var jobs = new[] { Spec(2), Spec(1), Spec(1) }
            .Select((spec, j) => new LeasedJob(new JobRecord($"job{j}", spec, JobState.Running, DateTimeOffset.UnixEpoch, null, null, 0, null, null, 0, 1), $"{j}"))
            .ToList();
        var previews = new BatchPreviews(jobs);
        Assert.DoesNotContain(Enumerable.Range(1, 20), step => Enumerable.Range(0, 4).Any(image => previews.Wants(step, image)));

        previews.Update(new Dictionary<string, int> { ["job0"] = 5, ["job2"] = 10 });
        var wanted = Enumerable.Range(1, 20).SelectMany(step => Enumerable.Range(0, 4).Where(image => previews.Wants(step, image)).Select(image => (step, image)));
        // Images: job0 is 0 and 1, job1 is 2, job2 is 3; step 20 is the image itself.
        Assert.Equal([(5, 0), (10, 0), (10, 3), (15, 0)], wanted);

        previews.Take(10, 3, new GeneratedImage(1, 1, 1, [7]));
        Assert.Null(previews.Claim(0));
        Assert.Equal(7, previews.Claim(2)!.Pixels[0]);
        Assert.Null(previews.Claim(2));
    }
}
