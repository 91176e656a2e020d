using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

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
        var queries = Enumerable.Range(0, 4).Select(i => $"class={i}&steps=5&seed={i}").Append("class=1&steps=6").ToList();
        // Sent together, and a generous batch delay, so a loaded CI machine still gathers them in one take.
        var responses = await Task.WhenAll(queries.Select(query =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/generate?" + query);
            request.Headers.Add("Prefer", "respond-async");
            return client.SendAsync(request);
        }));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        var ids = responses.Select(r => r.Headers.GetValues("X-Job-Id").Single()).ToList();
        foreach (var id in ids)
        {
            await Http.WaitForStateAsync(client, id, "succeeded");
        }

        var metrics = await client.GetStringAsync("/metrics");
        Assert.Equal(5, Value(metrics, "rinserve_batch_size_sum"));
        Assert.Equal(2, Value(metrics, "rinserve_batch_size_count"));
    }

    private static double Value(string metrics, string name)
    {
        var match = Regex.Match(metrics, "^" + name + @"\{[^}]*\} (\S+)", RegexOptions.Multiline);
        Assert.True(match.Success, $"{name} not in /metrics");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
