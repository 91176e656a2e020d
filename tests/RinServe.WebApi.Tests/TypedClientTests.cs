using System.Security.Cryptography;
using System.Text;
using RinServe.Client;
using RinServe.Testing;

namespace RinServe.WebApi.Tests;

/// <summary>
/// The generated client (src/RinServe.Client) against a real service process with API keys on, in both queue modes:
/// what a caller does from code, end to end.
/// </summary>
public abstract class TypedClientContract
{
    private const string Key = "typed-client-key";

    protected abstract Task<RedisServer?> StartRedisAsync();

    [Fact]
    public async Task Generate_submit_follow_fetch_cancel_list_and_typed_problems()
    {
        await using var redis = await StartRedisAsync();
        using var gate = new StepGateFifo(gatedClass: 9);
        await using var service = ServiceProcess.Start("client", ProcessSettings.For("all", redis, redis is null ? "" : $"cl{Guid.NewGuid():N}:",
        [
            ("Auth__ApiKeys__0", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Key)))),
            ("Jobs__MaxJobsPerKey", "2"),
            ("Workers__MaxBatch", "1"),
            .. gate.Settings,
        ]));
        await service.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
        using var http = new HttpClient { BaseAddress = new Uri(service.Url + "/"), Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Add("X-Api-Key", Key);
        var client = new RinServeClient(http);

        var models = await client.ListModelsAsync();
        var tiny = Assert.Single(models);
        Assert.Equal((16, "Sneaker"), (tiny.Resolution, tiny.Classes.ElementAt(7).Name));

        // A seed gives its image, the same bytes every time.
        byte[] first, again;
        using (var image = await client.GenerateAsync(@class: "Sneaker", steps: 3, seed: 42))
        {
            Assert.Equal(200, image.StatusCode);
            Assert.Equal("42", image.Headers["X-Seed"].Single());
            first = await ReadAllAsync(image.Stream);
        }
        using (var image = await client.GenerateAsync(@class: "7", steps: 3, seed: 42))
        {
            again = await ReadAllAsync(image.Stream);
        }
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], first[..4]);
        Assert.Equal(first, again);

        // A bad value: a typed problem that names the parameter; nothing queued.
        var bad = await Assert.ThrowsAsync<RinServeApiException<ProblemDetails>>(() => client.GenerateAsync(@class: "1", steps: 0));
        Assert.Equal((400, "steps"), (bad.StatusCode, bad.Result.Parameter));

        // Submit a job and follow its events: the step gate holds it after its first step, so the stream starts mid-job.
        var held = await client.SubmitJobAsync(@class: "9", steps: 12, seed: 7);
        // The answer is the job as the queue reads it back after the enqueue: with Redis, a free worker may already
        // have claimed it (CI saw "running" once), so either state is right; it cannot be finished, the gate holds it.
        Assert.Contains(held.Status, new[] { "queued", "running" });
        await gate.HeldAsync(service, held.Id, TimeSpan.FromSeconds(60));
        var events = new List<JobEvent>();
        var subscribed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watching = Task.Run(async () =>
        {
            await foreach (var evt in client.WatchJobAsync(held.Id))
            {
                lock (events)
                {
                    events.Add(evt);
                }
                subscribed.TrySetResult(); // the stream's first event is the job as it is now: held at step 1
            }
        });

        // The key's cap (2 unfinished jobs): the held one and a queued one; the third is a typed 429 with Retry-After.
        var queued = await client.SubmitJobAsync(@class: "3", steps: 3);
        var full = await Assert.ThrowsAsync<RinServeApiException<ProblemDetails>>(() => client.SubmitJobAsync(@class: "4", steps: 3));
        Assert.Equal(429, full.StatusCode);
        Assert.True(int.Parse(full.Headers["Retry-After"].Single(), System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Contains("MaxJobsPerKey", full.Result.Detail);
        // Cancel the queued one: its place comes back.
        Assert.Equal("canceled", (await client.CancelJobAsync(queued.Id)).Status);
        var next = await client.SubmitJobAsync(@class: "4", steps: 3);

        await subscribed.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await gate.Release(TimeSpan.FromSeconds(10));
        await watching.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(("running", 1), (events[0].Job.Status, events[0].Job.Progress.Step));
        Assert.Equal(("succeeded", 12), (events[^1].Type, events[^1].Job.Progress.Step));
        var steps = events.Select(e => e.Job.Progress.Step).ToList();
        Assert.Equal(steps.Order(), steps);
        using (var image = await client.GetJobImageAsync(held.Id, 0))
        {
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], (await ReadAllAsync(image.Stream))[..4]);
        }
        Assert.Equal("succeeded", (await client.WaitForJobAsync(next.Id)).Status);
        Assert.Equal("canceled", (await client.GetJobAsync(queued.Id)).Status);
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }
}

public sealed class TypedClientInProcessTests : TypedClientContract
{
    protected override Task<RedisServer?> StartRedisAsync() => Task.FromResult<RedisServer?>(null);
}

public sealed class TypedClientRedisTests : TypedClientContract
{
    protected override async Task<RedisServer?> StartRedisAsync() => await RedisServer.StartAsync();
}
