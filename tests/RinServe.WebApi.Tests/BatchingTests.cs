using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RinServe.Onnx.Tests;

namespace RinServe.WebApi.Tests;

/// <summary>Iteration-level batching in the worker: jobs join running rows at step boundaries and leave when done or canceled.</summary>
public sealed class BatchingTests
{
    [Fact]
    public async Task A_job_with_other_settings_joins_a_running_job_at_a_step_boundary_and_gives_the_pixels_it_gives_alone()
    {
        using var gate = new HeldJobGate(gatedClass: 9);
        await using var factory = new RinServeFactory(new Dictionary<string, string?> { ["Workers:MaxBatch"] = "4" }, gate);
        var client = factory.CreateClient();
        const string joiner = "class=1&seed=77&steps=6&sampler=dpmpp-2m&guidance=1.5&n=2";
        // Alone first: the pixels to compare with.
        var alone = await ProcessSettings.SubmitAsync(client, joiner);
        await Http.WaitForStateAsync(client, alone, "succeeded");

        // A long job, held after its first step; the joiner is queued while it is held, so it joins at the next boundary.
        var running = await ProcessSettings.SubmitAsync(client, "class=9&seed=5&steps=40");
        Assert.Equal(running, await gate.Held.WaitAsync(TimeSpan.FromSeconds(60)));
        var joined = await ProcessSettings.SubmitAsync(client, joiner);
        gate.Open();

        var first = await Http.WaitForStateAsync(client, running, "succeeded");
        var second = await Http.WaitForStateAsync(client, joined, "succeeded");
        // It started after the long job and finished before it: it ran beside it, not after it.
        Assert.True(second.GetProperty("startedAt").GetDateTimeOffset() >= first.GetProperty("startedAt").GetDateTimeOffset());
        Assert.True(second.GetProperty("finishedAt").GetDateTimeOffset() <= first.GetProperty("finishedAt").GetDateTimeOffset(),
            "the joining job did not finish before the long one it joined");
        for (var k = 0; k < 2; k++)
        {
            Assert.Equal(await client.GetByteArrayAsync($"/jobs/{alone}/images/{k}"), await client.GetByteArrayAsync($"/jobs/{joined}/images/{k}"));
        }
    }

    [Fact]
    public async Task Canceling_one_of_the_running_jobs_drops_its_rows_and_leaves_the_others_to_finish()
    {
        using var gate = new HeldJobGate(gatedClass: 1);
        await using var factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["Workers:MaxBatch"] = "4",
            ["Workers:MaxBatchDelay"] = "00:00:01",
        }, gate);
        var client = factory.CreateClient();
        var ids = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => ProcessSettings.SubmitAsync(client, $"class={i}&steps=30&seed={i}")));
        // The gate holds class 1 after its first step until it is canceled.
        Assert.Equal(ids[1], await gate.Held.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(HttpStatusCode.OK, (await client.DeleteAsync($"/jobs/{ids[1]}")).StatusCode);

        Assert.Equal("canceled", (await Http.WaitForStateAsync(client, ids[1], "canceled")).GetProperty("status").GetString());
        await Http.WaitForStateAsync(client, ids[0], "succeeded");
        await Http.WaitForStateAsync(client, ids[2], "succeeded");
        Assert.Equal("canceled", (await client.GetFromJsonAsync<JsonElement>($"/jobs/{ids[1]}")).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await client.GetAsync($"/jobs/{ids[1]}/images/0")).StatusCode);
    }

    [Fact]
    public async Task Steps_of_two_models_interleave_so_a_short_job_of_one_is_not_stuck_behind_a_long_job_of_the_other()
    {
        var folder = Path.Combine(Path.GetTempPath(), "rinserve-tests-two-models-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var tiny = File.ReadAllBytes(Path.Combine(TestModels.ParityFolder, "tiny.onnx"));
            File.WriteAllBytes(Path.Combine(folder, "tiny.onnx"), tiny);
            File.WriteAllBytes(Path.Combine(folder, "other.onnx"), OnnxModels.WithMetadata(tiny, m =>
            {
                m["rin.name"] = "other";
                m["rin.family"] = "other";
                return m;
            }));
            using var gate = new HeldJobGate(gatedClass: 9);
            await using var factory = new RinServeFactory(new Dictionary<string, string?> { ["RinServe:ModelsPath"] = folder }, gate);
            var client = factory.CreateClient();
            // A long job of one model, held after its first step; a short job of the other model queued meanwhile.
            var longJob = await ProcessSettings.SubmitAsync(client, "model=tiny&class=9&steps=300");
            Assert.Equal(longJob, await gate.Held.WaitAsync(TimeSpan.FromSeconds(60)));
            var shortJob = await ProcessSettings.SubmitAsync(client, "model=other&class=1&steps=5");
            gate.Open();

            var first = await Http.WaitForStateAsync(client, longJob, "succeeded");
            var second = await Http.WaitForStateAsync(client, shortJob, "succeeded");
            Assert.Equal("other", second.GetProperty("model").GetString());
            // One worker, one model's step at a time: the short job started after the long one and still ended first.
            Assert.True(second.GetProperty("startedAt").GetDateTimeOffset() >= first.GetProperty("startedAt").GetDateTimeOffset());
            Assert.True(second.GetProperty("finishedAt").GetDateTimeOffset() < first.GetProperty("finishedAt").GetDateTimeOffset(),
                "the other model's short job waited for the long job's 300 steps");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
