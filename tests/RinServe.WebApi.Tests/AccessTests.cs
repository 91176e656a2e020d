using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace RinServe.WebApi.Tests;

public sealed class AccessTests
{
    private static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static HttpRequestMessage Post(string url, string? key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url);
        request.Headers.Add("Prefer", "respond-async");
        if (key is not null)
        {
            request.Headers.Add("X-Api-Key", key);
        }
        return request;
    }

    [Fact]
    public async Task A_key_at_its_cap_of_unfinished_jobs_gets_429_with_retry_after_and_the_other_keys_go_on()
    {
        using var gate = new HeldJobGate(gatedClass: 1); // keeps alpha's first job running until the end
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["Auth:ApiKeys:0"] = Hash("alpha-key"),
            ["Auth:ApiKeys:1"] = Hash("beta-key"),
            ["Jobs:MaxJobsPerKey"] = "2",
            ["Workers:MaxBatch"] = "1",
        }, gate);
        var client = factory.CreateClient();
        var running = await client.SendAsync(Post("/generate?class=1&steps=5", "alpha-key"));
        Assert.Equal(HttpStatusCode.Accepted, running.StatusCode);
        await gate.Held.WaitAsync(TimeSpan.FromSeconds(60));
        var queued = await client.SendAsync(Post("/generate?class=2&steps=5", "alpha-key"));
        Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);

        var refused = await client.SendAsync(Post("/generate?class=3&steps=5", "alpha-key"));
        await Http.AssertProblemAsync(refused, (HttpStatusCode)429, null);
        Assert.True(int.Parse(refused.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Contains("MaxJobsPerKey", await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Accepted, (await client.SendAsync(Post("/generate?class=3&steps=5", "beta-key"))).StatusCode);

        // Canceling one of its jobs gives the key its place back.
        using var cancel = new HttpRequestMessage(HttpMethod.Delete, $"/jobs/{queued.Headers.GetValues("X-Job-Id").Single()}");
        cancel.Headers.Add("X-Api-Key", "alpha-key");
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(cancel)).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await client.SendAsync(Post("/generate?class=3&steps=5", "alpha-key"))).StatusCode);
        gate.Open();
    }

    [Fact]
    public async Task With_api_keys_a_job_is_visible_only_to_the_key_that_made_it_and_each_key_is_rate_limited()
    {
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["Auth:ApiKeys:0"] = Hash("alpha-key"),
            ["Auth:ApiKeys:1"] = Hash("beta-key"),
            ["RateLimit:Enabled"] = "true",
            ["RateLimit:PermitLimit"] = "3",
            ["RateLimit:Window"] = "00:10:00",
        });
        var client = factory.CreateClient();

        await Http.AssertProblemAsync(await client.SendAsync(Post("/generate?class=1&steps=1", null)), HttpStatusCode.Unauthorized, "X-Api-Key");
        await Http.AssertProblemAsync(await client.GetAsync("/models"), HttpStatusCode.Unauthorized, "X-Api-Key");
        // Probes and scrapes stay open.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/metrics")).StatusCode);
        await Http.AssertProblemAsync(await client.SendAsync(Post("/generate?class=1&steps=1", "wrong-key")), HttpStatusCode.Forbidden, "X-Api-Key");

        var created = await client.SendAsync(Post("/generate?class=1&steps=1", "alpha-key"));
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var id = created.Headers.GetValues("X-Job-Id").Single();

        using var asAlpha = new HttpRequestMessage(HttpMethod.Get, $"/jobs/{id}");
        asAlpha.Headers.Add("X-Api-Key", "alpha-key");
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(asAlpha)).StatusCode);
        using var asBeta = new HttpRequestMessage(HttpMethod.Get, $"/jobs/{id}");
        asBeta.Headers.Authorization = new("Bearer", "beta-key");
        await Http.AssertProblemAsync(await client.SendAsync(asBeta), HttpStatusCode.NotFound, "id");

        // Beta has its own window: 3 requests pass, the 4th is limited.
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.Accepted, (await client.SendAsync(Post("/generate?class=1&steps=1", "beta-key"))).StatusCode);
        }
        var limited = await client.SendAsync(Post("/generate?class=1&steps=1", "beta-key"));
        await Http.AssertProblemAsync(limited, HttpStatusCode.TooManyRequests, null);
        Assert.True(limited.Headers.RetryAfter is not null);
    }

    [Fact]
    public async Task Without_api_keys_a_made_up_key_does_not_escape_the_rate_limit()
    {
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RateLimit:Enabled"] = "true",
            ["RateLimit:PermitLimit"] = "2",
            ["RateLimit:Window"] = "00:10:00",
        });
        var client = factory.CreateClient();
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(HttpStatusCode.Accepted, (await client.SendAsync(Post("/generate?class=1&steps=1", null))).StatusCode);
        }
        await AssertRateLimitedAsync(await client.SendAsync(Post("/generate?class=1&steps=1", "anything")));
        await AssertRateLimitedAsync(await client.SendAsync(Post("/generate?class=1&steps=1", Guid.NewGuid().ToString())));
        await AssertRateLimitedAsync(await client.SendAsync(Post("/generate?class=1&steps=1", null)));
        using var bearer = Post("/generate?class=1&steps=1", null);
        bearer.Headers.Authorization = new("Bearer", "made-up");
        await AssertRateLimitedAsync(await client.SendAsync(bearer));
    }

    [Fact]
    public async Task With_api_keys_invalid_keys_share_the_address_window_and_valid_keys_keep_their_own()
    {
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["Auth:ApiKeys:0"] = Hash("alpha-key"),
            ["RateLimit:Enabled"] = "true",
            ["RateLimit:PermitLimit"] = "2",
            ["RateLimit:Window"] = "00:10:00",
        });
        var client = factory.CreateClient();
        await Http.AssertProblemAsync(await client.SendAsync(Post("/generate?class=1&steps=1", "wrong-1")), HttpStatusCode.Forbidden, "X-Api-Key");
        await Http.AssertProblemAsync(await client.SendAsync(Post("/generate?class=1&steps=1", "wrong-2")), HttpStatusCode.Forbidden, "X-Api-Key");
        await AssertRateLimitedAsync(await client.SendAsync(Post("/generate?class=1&steps=1", "wrong-3")));
        await AssertRateLimitedAsync(await client.SendAsync(Post("/generate?class=1&steps=1", null)));
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(HttpStatusCode.Accepted, (await client.SendAsync(Post("/generate?class=1&steps=1", "alpha-key"))).StatusCode);
        }
        await AssertRateLimitedAsync(await client.SendAsync(Post("/generate?class=1&steps=1", "alpha-key")));
    }

    /// <summary>429 as problem details like every other error: a type, a title, the status, and Retry-After.</summary>
    private static async Task AssertRateLimitedAsync(HttpResponseMessage response)
    {
        await Http.AssertProblemAsync(response, HttpStatusCode.TooManyRequests, null);
        Assert.NotNull(response.Headers.RetryAfter);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.StartsWith("https://", problem.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("title").GetString()));
    }

    [Fact]
    public async Task Full_queue_answers_429_with_retry_after()
    {
        // The gate holds the first job running after its first step: the queue (running jobs count) is surely full.
        using var gate = new HeldJobGate(gatedClass: 1);
        await using var factory = new RinServeFactory(new Dictionary<string, string?> { ["Jobs:MaxQueueLength"] = "1" }, gate);
        var client = factory.CreateClient();
        var busy = await client.SendAsync(Post("/generate?class=1&steps=20", null));
        Assert.Equal(HttpStatusCode.Accepted, busy.StatusCode);
        Assert.Equal(busy.Headers.GetValues("X-Job-Id").Single(), await gate.Held.WaitAsync(TimeSpan.FromSeconds(60)));
        var refused = await client.SendAsync(Post("/generate?class=1&steps=1", null));
        await Http.AssertProblemAsync(refused, HttpStatusCode.TooManyRequests, null);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        await client.DeleteAsync($"/jobs/{busy.Headers.GetValues("X-Job-Id").Single()}");
    }

    [Fact]
    public async Task Api_role_without_redis_refuses_to_start_and_says_why()
    {
        await using var factory = new RinServeFactory(new Dictionary<string, string?> { ["RinServe:Role"] = "api" });
        var error = Record.Exception(() => factory.CreateClient());
        Assert.NotNull(error);
        Assert.Contains("RinServe:Redis", error.ToString());
    }

    [Fact]
    public async Task Several_models_at_one_resolution_need_a_model_name()
    {
        await using var factory = new RinServeFactory(new Dictionary<string, string?> { ["RinServe:ModelsPath"] = TestModels.ParityFolder });
        var client = factory.CreateClient();
        var models = await client.GetFromJsonAsync<JsonElement>("/models");
        Assert.True(models.GetArrayLength() > 1);
        await Http.AssertProblemAsync(await client.PostAsync("/generate?class=1&steps=1", null), HttpStatusCode.BadRequest, "model");
        var name = models[0].GetProperty("name").GetString();
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/generate?class=1&steps=1&model={name}", null)).StatusCode);
    }
}
