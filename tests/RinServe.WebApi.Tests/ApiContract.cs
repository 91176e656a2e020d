using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace RinServe.WebApi.Tests;

/// <summary>The HTTP behaviour of API.md, run against each queue backend.</summary>
public abstract class ApiContract(RinServeFactory factory, HeldJobGate gate)
{
    /// <summary>The seed of the job that a test holds running at the worker's step gate; no other test uses it.</summary>
    public const ulong HeldSeed = 909090909;

    public static HeldJobGate NewGate() => new(spec => spec.Seed == HeldSeed);

    protected HttpClient Client { get; } = factory.CreateClient();

    [Fact]
    public async Task Generate_waits_and_returns_a_png_with_job_headers_and_generation_text_chunks()
    {
        var response = await Client.PostAsync("/generate?class=7&steps=3&seed=42", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("42", response.Headers.GetValues("X-Seed").Single());
        Assert.Equal("tiny", response.Headers.GetValues("X-Model").Single());
        var id = response.Headers.GetValues("X-Job-Id").Single();
        Assert.Equal(22, id.Length);
        var png = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(0x89, png[0]);
        var latin1 = Encoding.Latin1.GetString(png);
        foreach (var chunk in new[] { "tEXtseed\042", "tEXtmodel\0tiny", "tEXtsteps\03", "tEXtsampler\0ddim", "tEXtschedule\0cosine", "tEXtclass\07 Sneaker" })
        {
            Assert.Contains(chunk, latin1);
        }
    }

    [Fact]
    public async Task Json_body_with_a_class_name_and_accept_json_returns_the_succeeded_job_document()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate")
        {
            Content = JsonContent.Create(new { @class = "sneaker", steps = 2, seed = 5, sampler = "ddpm", schedule = "sigmoid@-3,3,0.9" }),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        var response = await Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var job = await response.Json();
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal(7, job.GetProperty("class").GetInt64());
        Assert.Equal("Sneaker", job.GetProperty("className").GetString());
        Assert.Equal("ddpm", job.GetProperty("sampler").GetString());
        Assert.Equal(5UL, job.GetProperty("seed").GetUInt64());
        Assert.Equal(2, job.GetProperty("progress").GetProperty("step").GetInt32());
        Assert.Single(job.GetProperty("images").EnumerateArray());
    }

    [Theory]
    [InlineData("png", "image/png", new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' })]
    [InlineData("jpeg", "image/jpeg", new byte[] { 0xFF, 0xD8, 0xFF })]
    [InlineData("webp", "image/webp", new byte[] { (byte)'R', (byte)'I', (byte)'F', (byte)'F' })]
    public async Task Respond_async_returns_202_with_location_and_every_image_downloads_in_the_asked_format(string format, string mediaType, byte[] magic)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class=1&steps=2&n=2&format={format}");
        request.Headers.Add("Prefer", "respond-async");
        var response = await Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Json()).GetProperty("id").GetString()!;
        Assert.Equal($"/jobs/{id}", response.Headers.Location?.OriginalString);
        var job = await Http.WaitForStateAsync(Client, id, "succeeded");
        var seed = job.GetProperty("seed").GetUInt64();
        for (var k = 0; k < 2; k++)
        {
            var image = await Client.GetAsync($"/jobs/{id}/images/{k}");
            Assert.Equal(HttpStatusCode.OK, image.StatusCode);
            Assert.Equal(mediaType, image.Content.Headers.ContentType?.MediaType);
            Assert.Equal((seed + (ulong)k).ToString(System.Globalization.CultureInfo.InvariantCulture), image.Headers.GetValues("X-Seed").Single());
            Assert.Equal(magic, (await image.Content.ReadAsByteArrayAsync())[..magic.Length]);
        }
        await Http.AssertProblemAsync(await Client.GetAsync($"/jobs/{id}/images/2"), HttpStatusCode.NotFound, "k");
        await Http.AssertProblemAsync(await Client.GetAsync($"/jobs/{id}/images/x"), HttpStatusCode.BadRequest, "k");
        await Http.AssertProblemAsync(await Client.GetAsync($"/jobs/{id}/images/-1"), HttpStatusCode.BadRequest, "k");
    }

    [Fact]
    public async Task A_seed_gives_the_same_image_whether_it_ran_in_a_batch_or_alone()
    {
        // Four at once so the worker can batch them; then seed 12 again on its own.
        var posts = Enumerable.Range(10, 4).Select(seed =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class=3&steps=3&seed={seed}");
            request.Headers.Add("Prefer", "respond-async");
            return Client.SendAsync(request);
        }).ToList();
        var ids = new List<string>();
        foreach (var post in posts)
        {
            ids.Add((await (await post).Json()).GetProperty("id").GetString()!);
        }
        foreach (var id in ids)
        {
            await Http.WaitForStateAsync(Client, id, "succeeded");
        }
        var batched = await Client.GetByteArrayAsync($"/jobs/{ids[2]}/images/0");
        var alone = await (await Client.PostAsync("/generate?class=3&steps=3&seed=12", null)).Content.ReadAsByteArrayAsync();
        Assert.Equal(batched, alone);
    }

    [Fact]
    public async Task Events_stream_ends_with_succeeded_and_a_late_subscriber_first_gets_the_current_state()
    {
        // The job is held after its first step until the watcher has its first event: that event is surely the running
        // state, and the stream then follows the job to its end.
        const ulong seed = HeldSeed + 1;
        using var hold = gate.HoldSeed(seed, atStep: 1);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class=2&steps=5&seed={seed}");
        request.Headers.Add("Prefer", "respond-async");
        var id = (await (await Client.SendAsync(request)).Json()).GetProperty("id").GetString()!;
        Assert.Equal(id, await hold.Held.WaitAsync(TimeSpan.FromSeconds(60)));
        var events = new List<(string Type, string Data)>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120)); // a safety net: the stream ends with the job
        await foreach (var e in StreamEventsAsync($"/jobs/{id}/events", timeout.Token))
        {
            events.Add(e);
            hold.Open();
        }
        Assert.True(events[0].Type is "started" or "progress", $"first event {events[0].Type}");
        Assert.Equal("running", JsonDocument.Parse(events[0].Data).RootElement.GetProperty("status").GetString());
        Assert.Equal("succeeded", events[^1].Type);
        Assert.Equal("succeeded", JsonDocument.Parse(events[^1].Data).RootElement.GetProperty("status").GetString());

        var late = await ReadEventsAsync($"/jobs/{id}/events");
        Assert.Equal("succeeded", Assert.Single(late).Type);
    }

    [Fact]
    public async Task Events_carry_x0_previews_of_every_image_tiled_only_to_watchers_who_asked()
    {
        // Held after step 1 until both watchers are in; held again at the next step after the preview came, so the job is
        // surely still running when the plain watcher's events are checked and it is deleted. The 20,000 steps are only
        // a cap: the one thing left to time is the worker learning of the preview request at its next heartbeat (100 ms
        // in tests), which no gate can see; the preview then comes at the next multiple of 50.
        const ulong seed = HeldSeed + 2;
        using var start = gate.HoldSeed(seed, atStep: 1);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class=2&steps=20000&n=3&seed={seed}");
        request.Headers.Add("Prefer", "respond-async");
        var id = (await (await Client.SendAsync(request)).Json()).GetProperty("id").GetString()!;
        Assert.Equal(id, await start.Held.WaitAsync(TimeSpan.FromSeconds(60)));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120)); // a safety net only
        var plain = new System.Collections.Concurrent.ConcurrentQueue<(string Type, string Data)>();
        var plainIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var plainProgress = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var plainWatcher = Task.Run(async () =>
        {
            await foreach (var e in StreamEventsAsync($"/jobs/{id}/events", timeout.Token))
            {
                plain.Enqueue(e);
                plainIn.TrySetResult();
                if (e.Type == "progress")
                {
                    plainProgress.TrySetResult();
                }
            }
        });
        JsonElement? preview = null;
        HeldJobGate.Hold? pause = null;
        var opened = false;
        await foreach (var e in StreamEventsAsync($"/jobs/{id}/events?preview=50", timeout.Token))
        {
            if (!opened)
            {
                await plainIn.Task.WaitAsync(timeout.Token);
                start.Open();
                opened = true;
            }
            if (JsonDocument.Parse(e.Data).RootElement.TryGetProperty("preview", out var p))
            {
                Assert.Equal("progress", e.Type);
                preview = p.Clone();
                pause = gate.HoldSeed(seed);
                break;
            }
        }
        Assert.NotNull(pause);
        using (pause)
        {
            Assert.Equal(id, await pause.Held.WaitAsync(timeout.Token));
            // The plain watcher sees progress too (its events of the steps before the pause are on their way).
            await plainProgress.Task.WaitAsync(timeout.Token);
            Assert.Equal(HttpStatusCode.OK, (await Client.DeleteAsync($"/jobs/{id}")).StatusCode);
        }
        await plainWatcher;

        Assert.NotNull(preview);
        var step = preview.Value.GetProperty("step").GetInt32();
        Assert.True(step > 0 && step % 50 == 0, $"preview at step {step}");
        // Three 16 px images (the fixture's side, under 64): two columns, two rows.
        Assert.Equal((32, 32), (preview.Value.GetProperty("width").GetInt32(), preview.Value.GetProperty("height").GetInt32()));
        var png = Convert.FromBase64String(preview.Value.GetProperty("png").GetString()!);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.Equal(32, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16))); // IHDR width
        Assert.Contains(plain, e => e.Type == "progress");
        Assert.DoesNotContain(plain, e => e.Data.Contains("\"preview\"", StringComparison.Ordinal));
        Assert.Equal("canceled", plain.Last().Type);
    }

    [Fact]
    public async Task Playground_page_is_served_at_the_root()
    {
        var page = await Client.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("RinServe playground", await page.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/playground.js")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/playground.css")).StatusCode);
    }

    private async IAsyncEnumerable<(string Type, string Data)> StreamEventsAsync(
        string url, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        using var response = await Client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        string? type = null;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                yield return (type ?? "message", line[6..]);
            }
        }
    }

    private async Task<List<(string Type, string Data)>> ReadEventsAsync(string url)
    {
        // A safety net only: the stream ends at the job's end.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        using var response = await Client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var events = new List<(string, string)>();
        string? type = null;
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((type ?? "message", line[6..]));
            }
        }
        return events;
    }

    [Fact]
    public async Task Deleting_a_running_job_cancels_it_at_the_next_step()
    {
        // The gate holds the job after its first step: it is surely running when it is deleted, and the deletion (the
        // heartbeat cancels the batch) is what lets the worker go on.
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?class=2&steps=20&seed={HeldSeed}");
        request.Headers.Add("Prefer", "respond-async");
        var id = (await (await Client.SendAsync(request)).Json()).GetProperty("id").GetString()!;
        Assert.Equal(id, await gate.Held.WaitAsync(TimeSpan.FromSeconds(60)));
        var canceled = await Client.DeleteAsync($"/jobs/{id}");
        Assert.Equal(HttpStatusCode.OK, canceled.StatusCode);
        Assert.Equal("canceled", (await canceled.Json()).GetProperty("status").GetString());
        var job = await Client.GetFromJsonAsync<JsonElement>($"/jobs/{id}");
        Assert.Equal("canceled", job.GetProperty("status").GetString());
        Assert.Equal(1, job.GetProperty("progress").GetProperty("step").GetInt32());
        await Http.AssertProblemAsync(await Client.GetAsync($"/jobs/{id}/images/0"), HttpStatusCode.Conflict, "id");
        // The worker is free again.
        Assert.Equal(HttpStatusCode.OK, (await Client.PostAsync("/generate?class=1&steps=1", null)).StatusCode);
    }

    [Fact]
    public async Task Idempotency_key_returns_the_same_job_and_409_when_reused_with_other_parameters()
    {
        var key = Guid.NewGuid().ToString();
        async Task<HttpResponseMessage> Post(string query)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/generate?" + query);
            request.Headers.Add("Idempotency-Key", key);
            request.Headers.Add("Prefer", "respond-async");
            return await Client.SendAsync(request);
        }
        var first = await Post("class=4&steps=2");
        var again = await Post("class=4&steps=2");
        Assert.Equal(first.Headers.GetValues("X-Job-Id").Single(), again.Headers.GetValues("X-Job-Id").Single());
        Assert.Equal(first.Headers.GetValues("X-Seed").Single(), again.Headers.GetValues("X-Seed").Single());
        await Http.AssertProblemAsync(await Post("class=5&steps=2"), HttpStatusCode.Conflict, "Idempotency-Key");
    }

    [Fact]
    public async Task Models_health_metrics_and_swagger_answer()
    {
        var models = await Client.GetFromJsonAsync<JsonElement>("/models");
        var tiny = Assert.Single(models.EnumerateArray());
        Assert.Equal(16, tiny.GetProperty("resolution").GetInt32());
        Assert.Equal("Sneaker", tiny.GetProperty("classes")[7].GetProperty("name").GetString());
        Assert.Equal("CPU", tiny.GetProperty("executionProvider").GetString());
        Assert.True(tiny.GetProperty("supportsGuidance").GetBoolean());
        Assert.Equal(0f, tiny.GetProperty("defaultGuidance").GetSingle());
        // The only model at its resolution is what a request naming only that res gets, whatever the default family.
        Assert.Equal(("tiny", true), (tiny.GetProperty("family").GetString(), tiny.GetProperty("isDefault").GetBoolean()));

        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/healthz/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/healthz/ready")).StatusCode);

        await Client.PostAsync("/generate?class=1&steps=2", null);
        var metrics = await Client.GetStringAsync("/metrics");
        foreach (var name in new[] { "rinserve_images_generated_total", "rinserve_step_rows", "rinserve_job_wait_seconds", "rinserve_job_run_seconds", "rinserve_queue_depth", "rinserve_step_duration_seconds" })
        {
            Assert.Contains(name, metrics);
        }

        var swagger = await Client.GetStringAsync("/swagger/v1/swagger.json");
        foreach (var text in new[] { "image/png", "image/jpeg", "image/webp", "text/event-stream", "\"preview\"", "\"413\"", "\"429\"", "\"503\"", "\"409\"", "application/problem+json", "Sneaker", "isDefault", "RinServe:DefaultFamily" })
        {
            Assert.Contains(text, swagger);
        }
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/swagger/index.html")).StatusCode);
    }
}

public sealed class InProcessApiTests(InProcessService service) : ApiContract(service.Factory, service.Gate), IClassFixture<InProcessService>;

public sealed class RedisApiTests(RedisBackedService service) : ApiContract(service.Factory, service.Gate), IClassFixture<RedisBackedService>;
