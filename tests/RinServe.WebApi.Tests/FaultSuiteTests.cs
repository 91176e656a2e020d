using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RinServe.Testing;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RinServe.WebApi.Tests;

/// <summary>
/// Issue 14's fault suite against real processes and a real redis-server. Each test prints its figures (requests by status,
/// jobs accepted and completed, duplicates, recovery time, memory) for bench/RELIABILITY.md.
/// </summary>
public sealed class FaultSuiteTests(ITestOutputHelper output)
{
    private static async Task WaitAllAsync(HttpClient client, IEnumerable<string> ids, string state, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        foreach (var id in ids)
        {
            await Http.WaitForStateAsync(client, id, state, deadline - DateTime.UtcNow);
        }
    }

    private static long RssBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    [Theory]
    [InlineData("SIGTERM", "everysec")]
    [InlineData("SIGKILL", "always")]
    public async Task Redis_restart_with_aof_under_a_steady_trickle_loses_no_accepted_job_and_runs_none_twice(string signal, string fsync)
    {
        await using var redis = await RedisServer.StartAsync(fsync);
        using var receiver = new WebhookReceiver();
        var prefix = $"aof{Guid.NewGuid():N}:";
        await using var api = ServiceProcess.Start("api", ProcessSettings.For("api", redis, prefix, receiver.ProcessSettings(WebhookTests.Secret)));
        await using var worker = ServiceProcess.Start("worker", ProcessSettings.For("worker", redis, prefix, receiver.ProcessSettings(WebhookTests.Secret)));
        await Task.WhenAll(api.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)), worker.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)));
        using var client = new HttpClient { BaseAddress = new Uri(api.Url), Timeout = TimeSpan.FromSeconds(10) };

        var accepted = new List<string>();
        var statuses = new Dictionary<int, int>();
        var clock = Stopwatch.StartNew();
        TimeSpan? down = null, up = null, firstAcceptAfter = null;
        // Redis goes down once the trickle has 5 accepted jobs and is back a second later (the outage), while requests
        // keep coming.
        var fiveAccepted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var restart = Task.Run(async () =>
        {
            await fiveAccepted.Task;
            down = clock.Elapsed;
            await (signal == "SIGTERM" ? redis.TerminateAsync() : redis.StopAsync());
            await Task.Delay(1000);
            await redis.StartProcessAsync();
            up = clock.Elapsed;
        });
        // The trickle runs past the restart until it has 10 accepted jobs, 3 of them after Redis was back: counted, not
        // timed, so a slow machine (where a request can take seconds) runs the same drill. 300 requests at most.
        var acceptedAfterBack = 0;
        for (var i = 0; i < 300 && (!restart.IsCompleted || accepted.Count < 10 || acceptedAfterBack < 3); i++)
        {
            var response = await ProcessSettings.PostAsync(client, $"class={i % 10}&steps=20&seed={i}&webhook={Uri.EscapeDataString(receiver.Url)}");
            statuses[(int)response.StatusCode] = statuses.GetValueOrDefault((int)response.StatusCode) + 1;
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                accepted.Add(response.Headers.GetValues("X-Job-Id").Single());
                if (accepted.Count == 5)
                {
                    fiveAccepted.TrySetResult();
                }
                if (up is { } back)
                {
                    firstAcceptAfter ??= clock.Elapsed - back;
                    acceptedAfterBack++;
                }
            }
            else
            {
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable,
                    $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}\n{api.Output}");
                Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, "a 503 without Retry-After");
            }
            await Task.Delay(100);
        }
        Assert.True(fiveAccepted.Task.IsCompleted, $"the trickle never had 5 accepted jobs, so Redis was never restarted:\n{api.Output}");
        await restart;

        await WaitAllAsync(client, accepted, "succeeded", TimeSpan.FromSeconds(90));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = connection.GetDatabase();
        var duplicates = 0;
        foreach (var id in accepted)
        {
            duplicates += (int)await db.HashGetAsync(prefix + "job:" + id, "completions") - 1;
        }
        output.WriteLine($"Redis {signal} (appendfsync {fsync}) under a trickle: {statuses.Values.Sum()} requests, " +
            string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Value} x {s.Key}")) +
            $"; {accepted.Count} accepted, {accepted.Count} succeeded, {duplicates} completed twice; " +
            $"first 202 {firstAcceptAfter?.TotalSeconds:F1} s after Redis was back (outage {((up - down) ?? TimeSpan.Zero).TotalSeconds:F1} s)");
        // Every accepted job's webhook came through the restart, signed, under one id per job.
        var deliveries = await receiver.WaitForSuccessOfAsync(accepted, WebhookTests.Key, TimeSpan.FromSeconds(90));
        output.WriteLine($"  webhooks: {deliveries.Count} of {accepted.Count} accepted jobs told, {deliveries.Values.Sum()} deliveries " +
            $"({deliveries.Values.Count(n => n > 1)} jobs told more than once, under the same webhook-id); every signature verified");
        Assert.Equal(0, duplicates);
        Assert.True(accepted.Count >= 10, $"only {accepted.Count} accepted");
        Assert.NotNull(firstAcceptAfter);
    }

    [Fact]
    public async Task Overload_at_ten_times_the_queue_bound_gets_429_with_retry_after_memory_stays_bounded_and_accepted_jobs_finish()
    {
        const int bound = 10;
        await using var service = ServiceProcess.Start("all", ProcessSettings.For("all", null, "", ("Jobs__MaxQueueLength", bound.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        await service.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = new Uri(service.Url), Timeout = TimeSpan.FromSeconds(30) };
        // Warm up, then the baseline.
        await WaitAllAsync(client, [await ProcessSettings.SubmitAsync(client, "class=1&steps=5")], "succeeded", TimeSpan.FromSeconds(30));
        var before = RssBytes(service.ProcessId);

        var accepted = new List<string>();
        var statuses = new Dictionary<int, int>();
        for (var wave = 0; wave < 10; wave++)
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 10 * bound).Select(i => ProcessSettings.PostAsync(client, $"class={i % 10}&steps=200&seed={wave * 1000 + i}")));
            foreach (var response in responses)
            {
                statuses[(int)response.StatusCode] = statuses.GetValueOrDefault((int)response.StatusCode) + 1;
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    accepted.Add(response.Headers.GetValues("X-Job-Id").Single());
                }
                else
                {
                    await Http.AssertProblemAsync(response, HttpStatusCode.TooManyRequests, null);
                    Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, "a 429 without Retry-After");
                }
            }
        }
        var peak = RssBytes(service.ProcessId);
        await WaitAllAsync(client, accepted, "succeeded", TimeSpan.FromSeconds(120));
        var after = RssBytes(service.ProcessId);
        output.WriteLine($"Overload, queue bound {bound}, 10 waves of {10 * bound}: " +
            string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Value} x {s.Key}")) +
            $"; {accepted.Count} accepted and succeeded; RSS {before >> 20} MB before, {peak >> 20} MB at the peak, {after >> 20} MB after");
        Assert.True(statuses.GetValueOrDefault(429) > 0, "no request was refused");
        Assert.True(accepted.Count >= bound, $"only {accepted.Count} accepted");
        Assert.True(peak < before + (200L << 20), $"memory grew from {before >> 20} MB to {peak >> 20} MB under overload");
    }

    [Fact]
    public async Task Sigterm_of_the_api_and_of_the_worker_with_clients_connected_loses_no_job()
    {
        await using var redis = await RedisServer.StartAsync("everysec");
        var prefix = $"roles{Guid.NewGuid():N}:";
        var apiSettings = ProcessSettings.For("api", redis, prefix);
        using var gate = new StepGateFifo(gatedClass: 1);
        var workerSettings = ProcessSettings.For("worker", redis, prefix, [("Workers__MaxBatch", "1"), .. gate.Settings]);
        await using var api = ServiceProcess.Start("api", apiSettings);
        await using var other = ServiceProcess.Start("api-2", apiSettings);
        await using var worker = ServiceProcess.Start("worker", workerSettings);
        await Task.WhenAll(api.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)), other.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)),
            worker.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60)));
        using var client = new HttpClient { BaseAddress = new Uri(api.Url), Timeout = TimeSpan.FromSeconds(60) };
        using var client2 = new HttpClient { BaseAddress = new Uri(other.Url), Timeout = TimeSpan.FromSeconds(60) };
        // The first job is held at the worker's step gate after its first step until the drill lets it go (an event: a job
        // of 10,000 steps once finished before the SIGTERM on an idle box). The others are of other classes.
        var ids = new List<string> { await ProcessSettings.SubmitAsync(client, "class=1&steps=30") };
        for (var i = 0; i < 4; i++)
        {
            ids.Add(await ProcessSettings.SubmitAsync(client, $"class={2 + i}&steps=30&seed={i}"));
        }
        await gate.HeldAsync(worker, ids[0], TimeSpan.FromSeconds(60));

        // API: a long poll and an event stream are answered at once, and the process exits cleanly.
        using var poll = new HttpRequestMessage(HttpMethod.Post, "/generate?class=7&steps=30");
        poll.Headers.Add("Prefer", "wait=100");
        var longPoll = client.SendAsync(poll);
        var events = await client.GetAsync($"/jobs/{ids[1]}/events", HttpCompletionOption.ResponseHeadersRead);
        var streamEnded = events.Content.ReadAsStringAsync();
        await Http.WaitForActiveRequestsAsync(client, "POST", 1, TimeSpan.FromSeconds(30)); // the long poll reached the API
        var clock = Stopwatch.StartNew();
        api.Terminate();
        var answer = await longPoll.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode);
        ids.Add(answer.Headers.GetValues("X-Job-Id").Single());
        await streamEnded.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, await api.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        var apiStop = clock.Elapsed;

        // Worker, mid-batch: it finishes the running job, starts no other, and exits; a new worker finishes the rest.
        clock.Restart();
        var started = worker.CountLines("joins model");
        Assert.True(started > 0, "no \"joins model\" line for the running job:\n" + worker.Output);
        worker.Terminate();
        await gate.Release(TimeSpan.FromSeconds(10));
        Assert.Equal(0, await worker.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var workerStop = clock.Elapsed;
        Assert.Equal(started, worker.CountLines("joins model"));
        Assert.Equal("succeeded", (await client2.GetFromJsonAsync<JsonElement>($"/jobs/{ids[0]}")).GetProperty("status").GetString());
        await using var replacement = ServiceProcess.Start("worker-2", workerSettings);
        await WaitAllAsync(client2, ids, "succeeded", TimeSpan.FromSeconds(90));
        output.WriteLine($"SIGTERM with clients connected: api exited in {apiStop.TotalSeconds:F1} s (long poll answered 202, event stream ended); " +
            $"worker exited in {workerStop.TotalSeconds:F1} s after finishing its running batch; all {ids.Count} jobs succeeded");
    }
}
