using System.Net;

namespace RinServe.WebApi.Tests;

public sealed class BatchingTests
{
    [Fact]
    public async Task Compatible_jobs_that_arrive_together_run_as_one_batch_and_incompatible_ones_do_not()
    {
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["Workers:MaxBatch"] = "8",
            ["Workers:MaxBatchDelay"] = "00:00:01",
        });
        var client = factory.CreateClient();
        // Four with equal settings plus one with other steps, all in one take: a batch of 4 and a batch of 1.
        var queries = Enumerable.Range(0, 4).Select(i => $"class={i}&steps=50&seed={i}").Append("class=1&steps=51").ToList();
        // Sent together, and a generous batch delay, so a loaded CI machine still gathers them in one take.
        var responses = await Task.WhenAll(queries.Select(query =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/generate?" + query);
            request.Headers.Add("Prefer", "respond-async");
            return client.SendAsync(request);
        }));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        var jobs = new List<(DateTimeOffset Started, DateTimeOffset Finished)>();
        foreach (var response in responses)
        {
            var job = await Http.WaitForStateAsync(client, response.Headers.GetValues("X-Job-Id").Single(), "succeeded");
            jobs.Add((job.GetProperty("startedAt").GetDateTimeOffset(), job.GetProperty("finishedAt").GetDateTimeOffset()));
        }

        // One worker runs one batch at a time (metrics are process-wide, so timing is the per-host evidence):
        // the four overlap, so they ran together; the odd one overlaps none of them.
        var batch = jobs.Take(4).ToList();
        Assert.True(batch.Max(j => j.Started) < batch.Min(j => j.Finished), "the compatible jobs did not run as one batch");
        var odd = jobs[4];
        Assert.True(odd.Started >= batch.Max(j => j.Finished) || odd.Finished <= batch.Min(j => j.Started), "the incompatible job ran inside the batch");
    }
}
