using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RinServe.Testing;
using StackExchange.Redis;

namespace RinServe.WebApi.Tests;

/// <summary>SIGTERM of a real service process with clients connected, for both queues (issue 14, defects 4 and 5).</summary>
public sealed class SigtermTests
{
    /// <summary>One batch at a time, and a shutdown timeout long enough for the running batch.</summary>
    private static readonly (string, string)[] Common = [("Workers__MaxBatch", "1"), ("DOTNET_SHUTDOWNTIMEOUTSECONDS", "60")];

    [Fact]
    public async Task All_in_one_with_redis_stops_taking_jobs_ends_watchers_at_once_and_finishes_only_its_running_batch()
    {
        await using var redis = await RedisServer.StartAsync();
        var prefix = $"term{Guid.NewGuid():N}:";
        using var gate = new StepGateFifo(gatedClass: 1);
        await using var service = ServiceProcess.Start("all", ProcessSettings.For("all", redis, prefix, [.. Common, .. gate.Settings]));
        await service.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = new Uri(service.Url), Timeout = TimeSpan.FromSeconds(120) };

        // A job runs and the step gate holds it after its first step until the drill lets it go; three more wait behind it
        // (MaxBatch 1). An event, not a long job: a job of 10,000 steps once finished before the SIGTERM on an idle box.
        var running = await ProcessSettings.SubmitAsync(client, "class=1&steps=20");
        var waiting = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            waiting.Add(await ProcessSettings.SubmitAsync(client, $"class=2&steps=5&seed={i}"));
        }
        await gate.HeldAsync(service, running, TimeSpan.FromSeconds(60));

        // Clients of a queued job: a long poll (an idempotent retry of its POST with Prefer: wait) and an event stream.
        var events = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/jobs/{waiting[0]}/events"), HttpCompletionOption.ResponseHeadersRead);
        var stream = new StreamReader(await events.Content.ReadAsStreamAsync());
        var streamEnded = Task.Run(async () => { while (await stream.ReadLineAsync() is not null) { } });
        using var poll = new HttpRequestMessage(HttpMethod.Post, "/generate?class=2&steps=5&seed=0");
        poll.Headers.Add("Prefer", "wait=100");
        poll.Headers.Add("Idempotency-Key", "sigterm-long-poll");
        var longPoll = client.SendAsync(poll);
        await Http.WaitForActiveRequestsAsync(client, "POST", 1, TimeSpan.FromSeconds(30));
        Assert.False(longPoll.IsCompleted);
        var startedBefore = service.CountLines("joins model");
        Assert.True(startedBefore > 0, "no \"joins model\" line for the running job:\n" + service.Output);

        var clock = Stopwatch.StartNew();
        service.Terminate();
        // The watchers are answered at once instead of holding the server's drain until the shutdown timeout.
        var answer = await longPoll.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode);
        Assert.NotNull(answer.Headers.Location);
        await streamEnded.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(service.HasExited); // it is still finishing the running batch, held at the gate
        await gate.Release(TimeSpan.FromSeconds(10));
        var exit = await service.WaitForExitAsync(TimeSpan.FromSeconds(50));
        Assert.True(exit == 0, $"exit {exit?.ToString() ?? "none within 50 s"}:\n{service.Output}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(50), $"took {clock.Elapsed}");

        // It finished the batch it was running and started no other; nothing failed on a disposed connection.
        Assert.Equal(startedBefore, service.CountLines("joins model"));
        Assert.DoesNotContain("ObjectDisposedException", service.Output);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = connection.GetDatabase();
        Assert.Equal("succeeded", (string?)await db.HashGetAsync(prefix + "job:" + running, "state"));
        foreach (var id in waiting)
        {
            Assert.Equal("queued", (string?)await db.HashGetAsync(prefix + "job:" + id, "state"));
        }
        Assert.Equal(0, (await db.StreamPendingAsync(prefix + "q:tiny", "workers")).PendingMessageCount);
    }

    [Fact]
    public async Task In_process_queue_drains_on_sigterm_refusing_new_jobs_and_serving_results_until_it_stops()
    {
        using var gate = new StepGateFifo(gatedClass: 1);
        await using var service = ServiceProcess.Start("all", ProcessSettings.For("all", null, "", [.. Common, .. gate.Settings,
            ("RinServe__ShutdownDrainTimeout", "00:00:40"), ("RinServe__ShutdownResultGrace", "00:00:10")]));
        await service.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = new Uri(service.Url), Timeout = TimeSpan.FromSeconds(60) };
        // The first job is held at the step gate (after its first step) until the drill has seen the refusals.
        var accepted = new List<string> { await ProcessSettings.SubmitAsync(client, "class=1&steps=20") };
        for (var i = 0; i < 3; i++)
        {
            accepted.Add(await ProcessSettings.SubmitAsync(client, $"class={2 * i}&steps=5&seed={i}"));
        }
        await gate.HeldAsync(service, accepted[0], TimeSpan.FromSeconds(60));

        service.Terminate();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        HttpResponseMessage refused;
        do
        {
            // respond-async: a probe accepted in the moment before the drain starts must not wait for its image (it would
            // wait behind the held job); it is one more accepted job, and the loop goes on until the refusal.
            using var probe = new HttpRequestMessage(HttpMethod.Post, "/generate?class=3&steps=5");
            probe.Headers.Add("Prefer", "respond-async");
            refused = await client.SendAsync(probe);
        }
        while (refused.StatusCode != HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline);
        Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, $"still accepting jobs 10 s after SIGTERM:\n{service.Output}");
        await Http.AssertProblemAsync(refused, HttpStatusCode.ServiceUnavailable, null);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/healthz/ready")).StatusCode);
        await gate.Release(TimeSpan.FromSeconds(10));

        // Every job accepted before SIGTERM finishes, and its image can still be fetched.
        foreach (var id in accepted)
        {
            await Http.WaitForStateAsync(client, id, "succeeded", TimeSpan.FromSeconds(40));
            var image = await client.GetAsync($"/jobs/{id}/images/0");
            Assert.Equal(HttpStatusCode.OK, image.StatusCode);
            Assert.Equal("image/png", image.Content.Headers.ContentType?.MediaType);
        }
        var exit = await service.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, $"exit {exit?.ToString() ?? "none within 60 s"}:\n{service.Output}");
        Assert.Contains("Every accepted job finished", service.Output);
    }
}
