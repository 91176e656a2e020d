using System.Net;
using System.Net.Http.Json;
using RinServe.Testing;
using StackExchange.Redis;

namespace RinServe.WebApi.Tests;

public sealed class ShutdownTests
{
    [Fact]
    public async Task On_shutdown_a_worker_finishes_its_running_batch_and_hands_back_jobs_it_has_not_started()
    {
        await using var redis = await RedisServer.StartAsync();
        var prefix = $"stop{Guid.NewGuid():N}:";
        var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:Redis"] = redis.ConnectionString,
            ["Jobs:KeyPrefix"] = prefix,
            ["Workers:MaxBatch"] = "4",
            // Long enough that both jobs arrive in one take; their settings differ, so they run as two batches.
            ["Workers:MaxBatchDelay"] = "00:00:01",
            // The running batch must finish inside the host's shutdown timeout, also on a loaded machine.
            ["shutdownTimeoutSeconds"] = "180",
        });
        var client = factory.CreateClient();
        async Task<string> Submit(int steps)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class=1&steps={steps}");
            request.Headers.Add("Prefer", "respond-async");
            var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            return response.Headers.GetValues("X-Job-Id").Single();
        }
        // Sent together so a loaded machine still delivers both in one take.
        var submitted = await Task.WhenAll(Submit(20000), Submit(19999));
        // Whichever the worker started first is "running"; the other is held, waiting for its own batch.
        string? running = null;
        for (var tries = 0; running is null && tries < 1500; tries++)
        {
            foreach (var id in submitted)
            {
                var job = await client.GetFromJsonAsync<System.Text.Json.JsonElement>($"/jobs/{id}");
                if (job.GetProperty("status").GetString() == "running")
                {
                    running = id;
                }
            }
            await Task.Delay(10);
        }
        Assert.NotNull(running);
        var waiting = submitted.Single(id => id != running);

        await factory.DisposeAsync();

        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = connection.GetDatabase();
        Assert.Equal("succeeded", (string?)await db.HashGetAsync(prefix + "job:" + running, "state"));
        Assert.Equal("queued", (string?)await db.HashGetAsync(prefix + "job:" + waiting, "state"));
        Assert.Equal(1, await db.StreamLengthAsync(prefix + "q:tiny"));
        // Nothing is left pending on the stopped worker, so nobody waits for a visibility timeout.
        Assert.Equal(0, (await db.StreamPendingAsync(prefix + "q:tiny", "workers")).PendingMessageCount);
    }

    [Fact]
    public async Task When_the_shutdown_timeout_runs_out_mid_batch_the_batch_stops_at_a_step_and_its_job_goes_back_to_the_queue()
    {
        await using var redis = await RedisServer.StartAsync();
        var prefix = $"abort{Guid.NewGuid():N}:";
        var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:Redis"] = redis.ConnectionString,
            ["Jobs:KeyPrefix"] = prefix,
            ["shutdownTimeoutSeconds"] = "1",
        });
        var client = factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate?class=1&steps=20000");
        request.Headers.Add("Prefer", "respond-async");
        var id = (await client.SendAsync(request)).Headers.GetValues("X-Job-Id").Single();
        await Http.WaitForStateAsync(client, id, "running");

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await factory.DisposeAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"stopping took {clock.Elapsed}");

        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = connection.GetDatabase();
        // Handed back, not left "running" on a dead consumer until the visibility timeout.
        Assert.Equal("queued", (string?)await db.HashGetAsync(prefix + "job:" + id, "state"));
        Assert.Equal(0, (await db.StreamPendingAsync(prefix + "q:tiny", "workers")).PendingMessageCount);
        Assert.Equal(1, await db.StreamLengthAsync(prefix + "q:tiny"));
    }
}
