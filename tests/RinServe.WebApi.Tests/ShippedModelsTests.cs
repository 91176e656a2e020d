using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;

namespace RinServe.WebApi.Tests;

/// <summary>
/// The service on the repo's models/ folder as it ships (fmnist at 64, 512, 768, 1024 px; glyph at 768 and 1024 px) with
/// appsettings.json's default family (glyph) and default steps (50), so a plain request runs as a user's would.
/// </summary>
public sealed class ShippedModelsService : IAsyncLifetime
{
    public RinServeFactory Factory { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Factory = new RinServeFactory(new Dictionary<string, string?>
        {
            ["RinServe:ModelsPath"] = Path.Combine(TestModels.RepoRoot, "models"),
            ["RinServe:DefaultFamily"] = "glyph",
            ["Sampling:DefaultSteps"] = "50",
            // A slow machine still answers the waiting request with the image, not a 202.
            ["Sampling:DefaultWaitSeconds"] = "120",
            ["Onnx:IntraOpThreads"] = "0",
        });
        _ = Factory.Server;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await Factory.DisposeAsync();
}

/// <summary>Two families share 768 and 1024 px: requests naming only res get the default family's model.</summary>
public sealed class ShippedModelsTests(ShippedModelsService service) : IClassFixture<ShippedModelsService>
{
    private readonly HttpClient _client = service.Factory.CreateClient();

    private async Task<(HttpResponseMessage Response, byte[] Body)> PostAsync(string query)
    {
        var response = await _client.PostAsync("/generate?" + query, null);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{query}: {(int)response.StatusCode} {System.Text.Encoding.UTF8.GetString(body)}");
        return (response, body);
    }

    private async Task<JsonElement> JobAsync(string query)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate?" + query);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        var response = await _client.SendAsync(request);
        var job = await response.Json();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{query}: {(int)response.StatusCode} {job}");
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        return job;
    }

    /// <summary>The PNG's text chunks (tEXt for Latin-1 values, iTXt for others such as "ĳ"), as ImageSharp reads them.</summary>
    private static (int Width, int Height, Dictionary<string, string> Text) ReadPng(byte[] png)
    {
        Assert.Equal(0x89, png[0]);
        var info = Image.Identify(png);
        return (info.Width, info.Height, info.Metadata.GetPngMetadata().TextData.ToDictionary(t => t.Keyword, t => t.Value));
    }

    [Fact]
    public async Task The_plain_request_for_class_207_at_768_px_answers_glyph_768s_ij()
    {
        var (response, body) = await PostAsync("class=207&res=768");
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("glyph-768", response.Headers.GetValues("X-Model").Single());
        var (width, height, text) = ReadPng(body);
        Assert.Equal((768, 768), (width, height));
        // At the model's own default request, as /models states it (the file's rin.default_sampler and steps).
        var glyph768 = (await _client.GetFromJsonAsync<JsonElement>("/models")).EnumerateArray()
            .Single(m => m.GetProperty("name").GetString() == "glyph-768");
        var (sampler, steps) = (glyph768.GetProperty("defaultSampler").GetString(), glyph768.GetProperty("defaultSteps").GetInt32());
        Assert.Equal(("glyph-768", "207 ĳ (U+0133)", sampler, steps.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            (text["model"], text["class"], text["sampler"], text["steps"]));
    }

    [Theory]
    [InlineData("ĳ")]
    [InlineData("U%2B0133")]
    [InlineData("u%2B0133")]
    [InlineData("%C4%B3%20(U%2B0133)")]
    public async Task Class_207_by_its_character_or_code_point(string cls)
    {
        var job = await JobAsync($"class={cls}&res=768&steps=2");
        Assert.Equal(("glyph-768", 207L, "ĳ (U+0133)"), (job.GetProperty("model").GetString(), job.GetProperty("class").GetInt64(), job.GetProperty("className").GetString()));
    }

    [Fact]
    public async Task A_character_is_case_sensitive()
    {
        Assert.Equal("a (U+0061)", (await JobAsync("class=a&res=768&steps=2")).GetProperty("className").GetString());
        Assert.Equal("A (U+0041)", (await JobAsync("class=A&res=768&steps=2")).GetProperty("className").GetString());
    }

    [Fact]
    public async Task Model_names_a_model_or_a_family_at_a_shared_resolution()
    {
        foreach (var query in new[] { "model=fmnist&res=768", "model=fmnist-768&res=768", "model=fmnist-768" })
        {
            var (response, body) = await PostAsync($"class=sneaker&{query}&steps=2");
            Assert.Equal("fmnist-768", response.Headers.GetValues("X-Model").Single());
            Assert.Equal("7 Sneaker", ReadPng(body).Text["class"]);
        }
        Assert.Equal("glyph-1024", (await JobAsync("class=Ï&res=1024&steps=1")).GetProperty("model").GetString());
        Assert.Equal("fmnist-64", (await JobAsync("class=7&res=64&steps=1")).GetProperty("model").GetString());
    }

    [Fact]
    public async Task The_fmnist_models_default_to_the_sampler_and_steps_their_judge_chose()
    {
        // models/MODELS.md, "Samplers and steps": DPM-Solver++(2M), 10 steps (training/sampler_table.py apply).
        var models = (await _client.GetFromJsonAsync<JsonElement>("/models")).EnumerateArray().ToList();
        foreach (var model in models.Where(m => m.GetProperty("family").GetString() == "fmnist"))
        {
            Assert.Equal(("dpmpp-2m", 10), (model.GetProperty("defaultSampler").GetString(), model.GetProperty("defaultSteps").GetInt32()));
        }

        var (_, body) = await PostAsync("class=7&res=64");
        var text = ReadPng(body).Text;
        Assert.Equal(("dpmpp-2m", "10"), (text["sampler"], text["steps"]));
    }

    [Fact]
    public async Task Models_says_each_models_family_and_which_a_request_naming_only_res_gets()
    {
        var models = (await _client.GetFromJsonAsync<JsonElement>("/models")).EnumerateArray()
            .ToDictionary(m => m.GetProperty("name").GetString()!, m => (Family: m.GetProperty("family").GetString(), IsDefault: m.GetProperty("isDefault").GetBoolean()));
        Assert.Equal(("glyph", true), models["glyph-768"]);
        Assert.Equal(("glyph", true), models["glyph-1024"]);
        Assert.Equal(("fmnist", false), models["fmnist-768"]);
        Assert.Equal(("fmnist", false), models["fmnist-1024"]);
        Assert.Equal(("fmnist", true), models["fmnist-64"]);
        Assert.Equal(("fmnist", true), models["fmnist-512"]);
    }

    [Theory]
    [InlineData("class=zz&res=768", "class")]
    [InlineData("class=284&res=768", "class")]
    [InlineData("class=Sneaker&res=768", "class")]
    [InlineData("class=U+0133&res=768", "class")] // '+' in a query is a space: "U 0133"; U%2B0133 is the code point
    public async Task A_bad_class_on_a_glyph_model_is_a_short_problem_naming_the_id_range(string query, string parameter)
    {
        var response = await _client.PostAsync("/generate?" + query, null);
        await Http.AssertProblemAsync(response, HttpStatusCode.BadRequest, parameter);
        var detail = (await response.Json()).GetProperty("detail").GetString()!;
        Assert.True(detail.Length < 300, $"{detail.Length} characters: {detail}");
        Assert.Contains("an id from 0 to 283", detail);
        Assert.Contains("'A (U+0041)', its character, or U+XXXX; GET /models lists them", detail);
        Assert.Contains("glyph-768", detail);
    }

    [Theory]
    [InlineData("class=1&model=nope&res=768", "model", "no model or family named 'nope' at res=768; loaded models: fmnist-768 (res=768), glyph-768 (res=768); families: fmnist, glyph")]
    [InlineData("class=1&model=fmnist", "res", "res is required: family 'fmnist' has several resolutions: 64, 512, 768, 1024")]
    [InlineData("class=1&model=glyph&res=64", "model", "no model or family named 'glyph' at res=64; loaded models: fmnist-64 (res=64); families: fmnist")]
    public async Task An_unknown_or_unplaced_model_is_a_problem_with_a_short_list(string query, string parameter, string detail)
    {
        var response = await _client.PostAsync("/generate?" + query, null);
        await Http.AssertProblemAsync(response, HttpStatusCode.BadRequest, parameter);
        Assert.Equal(detail, (await response.Json()).GetProperty("detail").GetString());
    }
}
