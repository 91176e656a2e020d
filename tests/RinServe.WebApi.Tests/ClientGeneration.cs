using NJsonSchema.CodeGeneration.CSharp;
using NSwag;
using NSwag.CodeGeneration.CSharp;
using RinServe.Testing;

namespace RinServe.WebApi.Tests;

/// <summary>
/// How src/RinServe.Client/RinServeClient.g.cs is made from the service's OpenAPI document (NSwag 14.8, in process):
/// one place for the generator's settings, used by the drift test and by the regeneration command
/// (<c>RINSERVE_REGENERATE_CLIENT=1 dotnet test tests/RinServe.WebApi.Tests -c Release --filter ClientDrift</c>).
/// </summary>
public static class ClientGeneration
{
    public static string ClientFile => Path.Combine(TestPaths.RepoRoot, "src", "RinServe.Client", "RinServeClient.g.cs");

    public static string DocumentFile => Path.Combine(TestPaths.RepoRoot, "src", "RinServe.Client", "openapi.json");

    public static async Task<string> GenerateAsync(string openApiJson)
    {
        var document = await OpenApiDocument.FromJsonAsync(openApiJson);
        // Three deliberate cuts, each with what the client offers instead:
        // - the event stream: no OpenAPI 3.0 generator reads text/event-stream; RinServeClient.cs has WatchJobAsync.
        document.Paths.Remove("/jobs/{id}/events");
        foreach (var path in new[] { "/generate", "/jobs" })
        {
            var post = document.Paths[path]["post"];
            // - the JSON body: the query takes the same fields, typed; one way is enough for a client.
            post.RequestBody = null;
            foreach (var body in post.Parameters.Where(p => p.Kind == OpenApiParameterKind.Body).ToList())
            {
                post.Parameters.Remove(body);
            }
            // - POST /generate's job document on 200 (Accept: application/json, n > 1): this client asks for the image;
            //   the document of a job comes from SubmitJobAsync and GetJobAsync.
            if (post.Responses.TryGetValue("200", out var ok))
            {
                ok.Content.Remove("application/json");
            }
        }
        var settings = new CSharpClientGeneratorSettings
        {
            ClassName = "RinServeClient",
            GenerateClientInterfaces = true,
            UseBaseUrl = false, // the HttpClient's BaseAddress says where the service is
            GenerateOptionalParameters = true,
            ExceptionClass = "RinServeApiException",
        };
        settings.CSharpGeneratorSettings.Namespace = "RinServe.Client";
        settings.CSharpGeneratorSettings.JsonLibrary = CSharpJsonLibrary.SystemTextJson;
        return new CSharpClientGenerator(document, settings).GenerateFile().ReplaceLineEndings("\n");
    }
}

/// <summary>The checked-in client and document are what the service and the generator make today.</summary>
public sealed class ClientDriftTests(InProcessService service) : IClassFixture<InProcessService>
{
    [Fact]
    public async Task The_checked_in_openapi_document_and_typed_client_match_the_service()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(await service.Factory.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!
            .ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }).ReplaceLineEndings("\n") + "\n";
        var client = await ClientGeneration.GenerateAsync(json);
        if (Environment.GetEnvironmentVariable("RINSERVE_REGENERATE_CLIENT") == "1")
        {
            await File.WriteAllTextAsync(ClientGeneration.DocumentFile, json);
            await File.WriteAllTextAsync(ClientGeneration.ClientFile, client);
        }
        const string how = "regenerate both: RINSERVE_REGENERATE_CLIENT=1 dotnet test tests/RinServe.WebApi.Tests -c Release --filter ClientDrift";
        Assert.True(json == await File.ReadAllTextAsync(ClientGeneration.DocumentFile), $"src/RinServe.Client/openapi.json is not the service's document; {how}");
        Assert.True(client == await File.ReadAllTextAsync(ClientGeneration.ClientFile), $"src/RinServe.Client/RinServeClient.g.cs is not what NSwag makes of it; {how}");
    }
}
