using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace RinServe.WebApi.Tests;

/// <summary>
/// The tiny fixture model whose metadata names a default sampler and steps (dpmpp-2m, 4); the test factory's
/// Sampling:DefaultSteps is 3.
/// </summary>
public sealed class DefaultSamplingService() : EditedModelService(metadata =>
{
    metadata["rin.default_sampler"] = "dpmpp_2m"; // an alias: read as dpmpp-2m
    metadata["rin.default_steps"] = "4";
});

public sealed class DefaultSamplingTests(DefaultSamplingService service) : IClassFixture<DefaultSamplingService>
{
    private readonly HttpClient _client = service.Factory.CreateClient();

    private async Task<(string Sampler, string Steps)> GenerateAsync(string query)
    {
        var response = await _client.PostAsync("/generate?" + query, null);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{query}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var png = await response.Content.ReadAsByteArrayAsync();
        return (DefaultGuidanceTests.PngText(png, "sampler"), DefaultGuidanceTests.PngText(png, "steps"));
    }

    [Fact]
    public async Task Models_shows_the_model_default_sampler_and_steps()
    {
        var model = Assert.Single((await _client.GetFromJsonAsync<JsonElement>("/models")).EnumerateArray());
        Assert.Equal("dpmpp-2m", model.GetProperty("defaultSampler").GetString());
        Assert.Equal(4, model.GetProperty("defaultSteps").GetInt32());
    }

    [Theory]
    [InlineData("class=7&seed=1", "dpmpp-2m", "4")]               // neither named: the model's pair
    [InlineData("class=7&seed=1&steps=2", "dpmpp-2m", "2")]       // steps named: the model's sampler
    [InlineData("class=7&seed=1&sampler=DPMPP-2M", "dpmpp-2m", "4")] // its own sampler named: its steps
    [InlineData("class=7&seed=1&sampler=ddim", "ddim", "3")]      // another sampler: Sampling:DefaultSteps
    [InlineData("class=7&seed=1&sampler=ddpm&steps=4", "ddpm", "4")]
    public async Task Requests_get_the_model_defaults_for_what_they_leave_out(string query, string sampler, string steps) =>
        Assert.Equal((sampler, steps), await GenerateAsync(query));

    [Fact]
    public async Task An_unknown_sampler_is_a_400_that_lists_every_sampler()
    {
        var response = await _client.PostAsync("/generate?class=7&sampler=euler", null);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("ddim, ddpm, ddpm-small, dpmpp-2m", problem.GetProperty("detail").GetString());
    }
}
