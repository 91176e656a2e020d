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
            ["Workers:MaxBatch"] = "4",
            ["Workers:MaxBatchDelay"] = "00:00:00.300",
        });
        var client = factory.CreateClient();
        // Four with equal settings plus one with other steps: one batch of 4 and one of 1.
        var queries = Enumerable.Range(0, 4).Select(i => $"class={i}&steps=5&seed={i}").Append("class=1&steps=6").ToList();
        var ids = new List<string>();
        foreach (var query in queries)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/generate?" + query);
            request.Headers.Add("Prefer", "respond-async");
            var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            ids.Add(response.Headers.GetValues("X-Job-Id").Single());
        }
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
