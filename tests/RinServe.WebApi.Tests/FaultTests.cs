using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RinServe.Testing;
using StackExchange.Redis;

namespace RinServe.WebApi.Tests;

/// <summary>Failures of real processes and of Redis itself.</summary>
public sealed class FaultTests
{
    [Fact]
    public async Task Fifty_jobs_all_succeed_exactly_once_when_a_worker_is_killed_mid_batch()
    {
        await using var redis = await RedisServer.StartAsync();
        using var receiver = new WebhookReceiver();
        var prefix = $"fault{Guid.NewGuid():N}:";
        Dictionary<string, string> Environment(string role) => new Dictionary<string, string>
        {
            ["RinServe__Role"] = role,
            ["RinServe__Redis"] = redis.ConnectionString,
            ["RinServe__ModelsPath"] = TestModels.Folder,
            ["Jobs__KeyPrefix"] = prefix,
            ["Jobs__VisibilityTimeout"] = "00:00:02",
            ["Jobs__ReclaimInterval"] = "00:00:00.250",
            ["Workers__HeartbeatInterval"] = "00:00:00.250",
            ["Workers__MaxBatch"] = "4",
            ["Onnx__IntraOpThreads"] = "1",
            ["Onnx__WarmUp"] = "false",
            ["RateLimit__Enabled"] = "false",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__LogLevel__Default"] = "Information",
        }.Concat(receiver.ProcessSettings(WebhookTests.Secret).Select(s => new KeyValuePair<string, string>(s.Item1, s.Item2))).ToDictionary();
        // Worker 1 holds every job it starts at the step gate (after its first step), so it is surely mid-batch when killed.
        using var gate = new StepGateFifo(gatedClass: null);
        var doomedSettings = Environment("worker");
        foreach (var (key, value) in gate.Settings)
        {
            doomedSettings[key] = value;
        }
        await using var api = ServiceProcess.Start("api", Environment("api"));
        await using var doomed = ServiceProcess.Start("worker-1", doomedSettings);
        await using var survivor = ServiceProcess.Start("worker-2", Environment("worker"));
        await Task.WhenAll(
            api.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)),
            doomed.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)),
            survivor.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)));

        using var client = new HttpClient { BaseAddress = new Uri(api.Url) };
        var ids = new List<string>();
        for (var i = 0; i < 50; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class={i % 10}&steps=20&seed={i}&webhook={Uri.EscapeDataString(receiver.Url)}");
            request.Headers.Add("Prefer", "respond-async");
            var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            ids.Add(response.Headers.GetValues("X-Job-Id").Single());
        }

        // Kill worker 1 while it runs a batch: its jobs are pending in Redis, held by a dead consumer.
        await gate.HeldAsync(doomed, null, TimeSpan.FromSeconds(60));
        doomed.Kill();

        var deadline = DateTime.UtcNow.AddSeconds(90);
        foreach (var id in ids)
        {
            while (true)
            {
                var job = await client.GetFromJsonAsync<JsonElement>($"/jobs/{id}");
                var status = job.GetProperty("status").GetString();
                if (status == "succeeded")
                {
                    break;
                }
                Assert.True(status is "queued" or "running", $"job {id} is {status}: {job}");
                Assert.True(DateTime.UtcNow < deadline, $"job {id} still {status}\nworker-2:\n{survivor.Output}");
                await Task.Delay(50);
            }
        }

        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = connection.GetDatabase();
        // Each job's result was stored exactly once.
        foreach (var id in ids)
        {
            Assert.Equal(1, (int)await db.HashGetAsync(prefix + "job:" + id, "completions"));
        }
        var redelivered = 0;
        foreach (var id in ids)
        {
            if ((int)await db.HashGetAsync(prefix + "job:" + id, "deliveries") > 1)
            {
                redelivered++;
            }
        }
        Assert.True(redelivered > 0, "no job was reclaimed from the killed worker");
        // Every job's webhook came, at least once, signed, under one id per job.
        var deliveries = await receiver.WaitForSuccessOfAsync(ids, WebhookTests.Key, TimeSpan.FromSeconds(90));
        Assert.Equal(ids.Count, deliveries.Count);
        Assert.Contains("Reclaimed job entry", survivor.Output);
    }

    [Fact]
    public async Task Redis_outage_gives_503_with_retry_after_and_the_service_recovers_by_itself()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:Redis"] = redis.ConnectionString,
            ["Jobs:RedisBreakDuration"] = "00:00:01",
            ["Jobs:RedisAttemptTimeout"] = "00:00:00.500",
            ["Workers:ErrorBackoff"] = "00:00:00.200",
        });
        var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/generate?class=1&steps=2", null)).StatusCode);

        await redis.StopAsync();
        var down = await client.PostAsync("/generate?class=1&steps=2", null);
        await Http.AssertProblemAsync(down, HttpStatusCode.ServiceUnavailable, null);
        Assert.True(down.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        await Http.AssertProblemAsync(await client.GetAsync("/jobs/AAAAAAAAAAAAAAAAAAAAAA"), HttpStatusCode.ServiceUnavailable, null);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/healthz/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz/live")).StatusCode);

        // Same port, empty data (no persistence): the queue must rebuild its consumer group by itself.
        await redis.StartProcessAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        HttpStatusCode status;
        do
        {
            await Task.Delay(250);
            status = (await client.PostAsync("/generate?class=1&steps=2", null)).StatusCode;
        }
        while (status != HttpStatusCode.OK && DateTime.UtcNow < deadline);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz/ready")).StatusCode);
    }

    [Fact]
    public async Task A_wait_cut_short_by_a_redis_outage_answers_202_with_the_accepted_job_not_503()
    {
        await using var redis = await RedisServer.StartAsync();
        var prefix = $"wait{Guid.NewGuid():N}:";
        // The gate holds the job after its first step for the rest of the test, so the request is still waiting on it.
        using var gate = new HeldJobGate(gatedClass: 1);
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:Redis"] = redis.ConnectionString,
            ["Jobs:KeyPrefix"] = prefix,
            // The held batch ends the test running: stop it at the next step instead of waiting 30 s.
            ["shutdownTimeoutSeconds"] = "2",
            ["Jobs:RedisBreakDuration"] = "00:00:01",
            ["Jobs:RedisAttemptTimeout"] = "00:00:00.500",
            ["Workers:ErrorBackoff"] = "00:00:00.200",
        }, gate);
        var client = factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate?class=1&steps=20");
        request.Headers.Add("Prefer", "wait=60");
        var waiting = client.SendAsync(request);
        // Redis goes away only once the job is accepted and running (held), and the request is waiting on it.
        await gate.Held.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.False(waiting.IsCompleted);

        await redis.StopAsync();
        var response = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        // The job was accepted before Redis went away: the caller learns its id instead of a 503 that invites a duplicate.
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var id = response.Headers.GetValues("X-Job-Id").Single();
        Assert.Equal($"/jobs/{id}", response.Headers.Location?.OriginalString);
        Assert.Equal(id, (await response.Json()).GetProperty("id").GetString());
    }
}
