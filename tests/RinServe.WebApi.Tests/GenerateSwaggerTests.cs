using System.Text.Json;
using RinServe.WebApi.Generation;

namespace RinServe.WebApi.Tests;

/// <summary>Swagger documents every parameter of POST /generate, in the query and the body, from its one declaration.</summary>
public sealed class GenerateSwaggerTests(InProcessService service) : IClassFixture<InProcessService>
{
    [Fact]
    public async Task Every_generate_parameter_is_documented_in_the_query_and_the_body()
    {
        var swagger = JsonDocument.Parse(await service.Factory.CreateClient().GetStringAsync("/swagger/v1/swagger.json")).RootElement;
        var generate = swagger.GetProperty("paths").GetProperty("/generate").GetProperty("post");
        var query = generate.GetProperty("parameters").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);
        var body = generate.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("properties");
        Assert.Equal(GenerateParameters.Names, query.Keys);
        foreach (var parameter in GenerateParameters.All)
        {
            Assert.Equal("query", query[parameter.Name].GetProperty("in").GetString());
            Assert.Equal(parameter.Description, query[parameter.Name].GetProperty("description").GetString());
            Assert.Equal(parameter.Description, body.GetProperty(parameter.Name).GetProperty("description").GetString());
        }
        Assert.Equal("integer", body.GetProperty("res").GetProperty("type").GetString());
    }
}
