using System.Net.Http.Json;
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

    [Fact]
    public async Task Canceling_one_member_of_a_running_batch_leaves_the_others_to_finish()
    {
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["Workers:MaxBatch"] = "4",
            ["Workers:MaxBatchDelay"] = "00:00:01",
        });
        var client = factory.CreateClient();
        var responses = await Task.WhenAll(Enumerable.Range(0, 3).Select(i =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class={i}&steps=20000&seed={i}");
            request.Headers.Add("Prefer", "respond-async");
            return client.SendAsync(request);
        }));
        var ids = responses.Select(r => r.Headers.GetValues("X-Job-Id").Single()).ToList();
        foreach (var id in ids)
        {
            await Http.WaitForStateAsync(client, id, "running");
        }
        Assert.Equal(HttpStatusCode.OK, (await client.DeleteAsync($"/jobs/{ids[1]}")).StatusCode);

        Assert.Equal("canceled", (await Http.WaitForStateAsync(client, ids[1], "canceled")).GetProperty("status").GetString());
        await Http.WaitForStateAsync(client, ids[0], "succeeded", TimeSpan.FromSeconds(300));
        await Http.WaitForStateAsync(client, ids[2], "succeeded", TimeSpan.FromSeconds(300));
        Assert.Equal("canceled", (await client.GetFromJsonAsync<System.Text.Json.JsonElement>($"/jobs/{ids[1]}")).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await client.GetAsync($"/jobs/{ids[1]}/images/0")).StatusCode);
    }
}
