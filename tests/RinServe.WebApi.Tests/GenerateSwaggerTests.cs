using System.Text.Json;
using RinServe.WebApi.Generation;

namespace RinServe.WebApi.Tests;

/// <summary>Swagger documents every parameter of POST /generate, in the query and the body, from its one declaration.</summary>
public sealed class GenerateSwaggerTests(InProcessService service) : IClassFixture<InProcessService>
{
    [Theory]
    [InlineData("/generate")]
    [InlineData("/jobs")]
    public async Task Every_generate_parameter_is_documented_typed_in_the_query_and_the_body(string path)
    {
        var swagger = JsonDocument.Parse(await service.Factory.CreateClient().GetStringAsync("/swagger/v1/swagger.json")).RootElement;
        var generate = swagger.GetProperty("paths").GetProperty(path).GetProperty("post");
        var parameters = generate.GetProperty("parameters").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);
        var body = generate.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("properties");
        Assert.Equal([.. GenerateParameters.Names, "Idempotency-Key"], parameters.Keys);
        Assert.Equal("header", parameters["Idempotency-Key"].GetProperty("in").GetString());
        foreach (var parameter in GenerateParameters.All)
        {
            Assert.Equal("query", parameters[parameter.Name].GetProperty("in").GetString());
            Assert.Equal(parameter.Description, parameters[parameter.Name].GetProperty("description").GetString());
            Assert.Equal(parameter.Description, body.GetProperty(parameter.Name).GetProperty("description").GetString());
        }
        // Typed as a client sends them, in the query as in the body (class is an id, a name or a character: text).
        foreach (var (name, type) in new[] { ("res", "integer"), ("steps", "integer"), ("seed", "integer"), ("guidance", "number"), ("class", "string") })
        {
            Assert.Equal(type, parameters[name].GetProperty("schema").GetProperty("type").GetString());
        }
        Assert.Equal("integer", body.GetProperty("res").GetProperty("type").GetString());
    }
}
