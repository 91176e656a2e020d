using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using RinServe.Onnx.Tests;

namespace RinServe.WebApi.Tests;

/// <summary>The service on a copy of the tiny fixture model with its metadata edited: the base of fixtures that each test one key.</summary>
public abstract class EditedModelService(Action<IDictionary<string, string>> edit) : IAsyncLifetime
{
    public string Folder { get; } = Path.Combine(Path.GetTempPath(), "rinserve-tests-edited-" + Guid.NewGuid().ToString("N"));
    public RinServeFactory Factory { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Folder);
        var tiny = File.ReadAllBytes(Path.Combine(TestModels.ParityFolder, "tiny.onnx"));
        File.WriteAllBytes(Path.Combine(Folder, "tiny.onnx"), OnnxModels.WithMetadata(tiny, metadata =>
        {
            edit(metadata);
            return metadata;
        }));
        Factory = new RinServeFactory(new Dictionary<string, string?> { ["RinServe:ModelsPath"] = Folder });
        _ = Factory.Server;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await Factory.DisposeAsync();
        Directory.Delete(Folder, recursive: true);
    }
}

/// <summary>The tiny fixture model with <c>rin.default_guidance = 1.5</c>.</summary>
public sealed class GuidedModelService() : EditedModelService(metadata => metadata["rin.default_guidance"] = "1.5");

public sealed class DefaultGuidanceTests(GuidedModelService service) : IClassFixture<GuidedModelService>
{
    private readonly HttpClient _client = service.Factory.CreateClient();

    internal static async Task<byte[]> PostAsync(HttpClient client, string query)
    {
        var response = await client.PostAsync("/generate?" + query, null);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{query}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadAsByteArrayAsync();
    }

    /// <summary>The value of a PNG tEXt chunk (chunks: 4-byte big-endian length, type, data, CRC; after the 8-byte signature).</summary>
    internal static string PngText(byte[] png, string keyword)
    {
        for (var at = 8; at + 8 <= png.Length;)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            var data = Encoding.Latin1.GetString(png, at + 8, length);
            if (Encoding.Latin1.GetString(png, at + 4, 4) == "tEXt" && data.StartsWith(keyword + "\0", StringComparison.Ordinal))
            {
                return data[(keyword.Length + 1)..];
            }
            at += 12 + length;
        }
        throw new InvalidDataException($"no tEXt chunk '{keyword}'");
    }

    [Fact]
    public async Task Models_shows_the_default_guidance_and_swagger_documents_it()
    {
        var model = Assert.Single((await _client.GetFromJsonAsync<JsonElement>("/models")).EnumerateArray());
        Assert.Equal(1.5f, model.GetProperty("defaultGuidance").GetSingle());

        var swagger = await _client.GetStringAsync("/swagger/v1/swagger.json");
        Assert.Contains("default_guidance from /models", swagger);
        Assert.Contains("rin.default_guidance", swagger);
    }

    [Fact]
    public async Task Request_without_guidance_runs_with_the_model_default_and_guidance_0_overrides_it()
    {
        const string Query = "class=7&steps=3&seed=42";
        Assert.Equal("1.5", PngText(await PostAsync(_client, Query), "guidance"));
        Assert.Equal("0", PngText(await PostAsync(_client, Query + "&guidance=0"), "guidance"));

        // Lossless WebP carries only the pixels: the default is really sampled with 1.5, and guidance=0 is really unguided.
        var byDefault = await PostAsync(_client, Query + "&format=webp");
        Assert.Equal(await PostAsync(_client, Query + "&format=webp&guidance=1.5"), byDefault);
        var unguided = await PostAsync(_client, Query + "&format=webp&guidance=0");
        Assert.NotEqual(byDefault, unguided);
        await using var plain = new RinServeFactory(new Dictionary<string, string?>());
        Assert.Equal(await PostAsync(plain.CreateClient(), Query + "&format=webp"), unguided);

        foreach (var (body, expected) in new (object, float)[] { (new { @class = 7, steps = 2 }, 1.5f), (new { @class = 7, steps = 2, guidance = 0 }, 0f) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/generate") { Content = JsonContent.Create(body) };
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            var job = await (await _client.SendAsync(request)).Json();
            Assert.Equal("succeeded", job.GetProperty("status").GetString());
            Assert.Equal(expected, job.GetProperty("guidance").GetSingle());
        }
    }

    [Fact]
    public async Task Idempotency_fingerprint_holds_the_resolved_guidance()
    {
        var key = Guid.NewGuid().ToString();
        async Task<HttpResponseMessage> Post(string query)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/generate?" + query);
            request.Headers.Add("Idempotency-Key", key);
            request.Headers.Add("Prefer", "respond-async");
            return await _client.SendAsync(request);
        }

        var first = await Post("class=4&steps=2&seed=1");
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(1.5f, (await first.Json()).GetProperty("guidance").GetSingle());
        var named = await Post("class=4&steps=2&seed=1&guidance=1.5");
        Assert.Equal(first.Headers.GetValues("X-Job-Id").Single(), named.Headers.GetValues("X-Job-Id").Single());
        await Http.AssertProblemAsync(await Post("class=4&steps=2&seed=1&guidance=0"), HttpStatusCode.Conflict, "Idempotency-Key");
    }

    [Fact]
    public async Task Default_guidance_above_Sampling_MaxGuidance_is_lowered_to_it()
    {
        await using var capped = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:ModelsPath"] = service.Folder,
            ["Sampling:MaxGuidance"] = "1",
        });
        var client = capped.CreateClient();
        var model = Assert.Single((await client.GetFromJsonAsync<JsonElement>("/models")).EnumerateArray());
        Assert.Equal(1f, model.GetProperty("defaultGuidance").GetSingle());
        Assert.Equal("1", PngText(await PostAsync(client, "class=2&steps=2&seed=3"), "guidance"));
        Assert.Equal(await PostAsync(client, "class=2&steps=2&seed=3&format=webp&guidance=1"), await PostAsync(client, "class=2&steps=2&seed=3&format=webp"));
    }
}

/// <summary>The tiny fixture model with <c>rin.default_guidance = 1.5</c> on the interval <c>rin.guidance_interval = 0,0.5</c>.</summary>
public sealed class IntervalGuidedModelService() : EditedModelService(metadata =>
{
    metadata["rin.default_guidance"] = "1.5";
    metadata["rin.guidance_interval"] = "0,0.5";
});

public sealed class GuidanceIntervalTests(IntervalGuidedModelService service, GuidedModelService whole)
    : IClassFixture<IntervalGuidedModelService>, IClassFixture<GuidedModelService>
{
    private readonly HttpClient _client = service.Factory.CreateClient();

    [Fact]
    public async Task Models_shows_the_guidance_interval_and_every_step_for_a_model_without_one()
    {
        var model = Assert.Single((await _client.GetFromJsonAsync<JsonElement>("/models")).EnumerateArray());
        Assert.Equal([0.0, 0.5], model.GetProperty("guidanceInterval").EnumerateArray().Select(v => v.GetDouble()));
        var plain = Assert.Single((await whole.Factory.CreateClient().GetFromJsonAsync<JsonElement>("/models")).EnumerateArray());
        Assert.Equal([0.0, 1.0], plain.GetProperty("guidanceInterval").EnumerateArray().Select(v => v.GetDouble()));
        Assert.Contains("rin.guidance_interval", await _client.GetStringAsync("/swagger/v1/swagger.json"));
    }

    [Fact]
    public async Task Requests_are_guided_only_on_the_models_interval()
    {
        // The same weight (1.5) and request on the same network: only the interval differs, so the pixels must.
        const string Query = "class=7&steps=4&seed=42&format=webp";
        var limited = await DefaultGuidanceTests.PostAsync(_client, Query);
        var everyStep = await DefaultGuidanceTests.PostAsync(whole.Factory.CreateClient(), Query);
        Assert.NotEqual(everyStep, limited);
        Assert.Equal(await DefaultGuidanceTests.PostAsync(whole.Factory.CreateClient(), Query + "&guidance=0"), await DefaultGuidanceTests.PostAsync(_client, Query + "&guidance=0"));
    }
}
