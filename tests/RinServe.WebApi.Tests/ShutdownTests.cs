using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RinServe.Testing;
using StackExchange.Redis;

namespace RinServe.WebApi.Tests;

public sealed class ShutdownTests
{
    [Fact]
    public async Task On_shutdown_a_worker_finishes_its_running_jobs_and_hands_back_jobs_it_has_not_started()
    {
        await using var redis = await RedisServer.StartAsync();
        var prefix = $"stop{Guid.NewGuid():N}:";
        using var gate = new HeldJobGate(gatedClass: 1);
        var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:Redis"] = redis.ConnectionString,
            ["Jobs:KeyPrefix"] = prefix,
            ["Workers:MaxBatch"] = "4",
            // Room for one job of two images at a time: the first taken runs, a second taken with it waits for room.
            ["Workers:MaxBatchRows"] = "2",
            // Long enough that both jobs arrive in one take (had the second come later, it would still be queued).
            ["Workers:MaxBatchDelay"] = "00:00:01",
            ["shutdownTimeoutSeconds"] = "180",
        }, gate);
        var client = factory.CreateClient();
        // Sent together so a loaded machine still delivers both in one take.
        var submitted = await Task.WhenAll(ProcessSettings.SubmitAsync(client, "class=1&steps=20&n=2"), ProcessSettings.SubmitAsync(client, "class=1&steps=19&n=2"));
        // The gate holds whichever job the worker started first (after its first step); the other waits for room.
        var running = await gate.Held.WaitAsync(TimeSpan.FromSeconds(60));
        var waiting = submitted.Single(id => id != running);

        // The held job goes on only once the host is stopping: it must finish, and the other must go back unstarted.
        factory.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(gate.Open);
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
    public async Task When_the_shutdown_timeout_runs_out_mid_job_the_worker_stops_at_a_step_and_the_job_goes_back_to_the_queue()
    {
        await using var redis = await RedisServer.StartAsync();
        var prefix = $"abort{Guid.NewGuid():N}:";
        // The gate holds the job after its first step and is never opened: only the shutdown timeout ends the hold.
        using var gate = new HeldJobGate(gatedClass: 1);
        var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:Redis"] = redis.ConnectionString,
            ["Jobs:KeyPrefix"] = prefix,
            ["shutdownTimeoutSeconds"] = "1",
        }, gate);
        var client = factory.CreateClient();
        var id = await ProcessSettings.SubmitAsync(client, "class=1&steps=20");
        Assert.Equal(id, await gate.Held.WaitAsync(TimeSpan.FromSeconds(60)));

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
