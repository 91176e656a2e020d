using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace RinServe.WebApi.Hosting;

/// <summary>What the document says once, outside any operation: its tags, described.</summary>
public sealed class SwaggerDocument : IDocumentFilter
{
    /// <summary>The name of the X-Api-Key security scheme in the document.</summary>
    public const string ApiKeyScheme = "ApiKey";

    public void Apply(OpenApiDocument swaggerDoc, DocumentFilterContext context)
    {
        ArgumentNullException.ThrowIfNull(swaggerDoc);
        swaggerDoc.Tags = new HashSet<OpenApiTag>
        {
            new() { Name = "Generate", Description = "Make images: one request per class, seed and settings; the answer is the image, or the job to follow." },
            new() { Name = "Jobs", Description = "Follow, watch, fetch and cancel the jobs that POST /generate queued." },
            new() { Name = "Models", Description = "The loaded models: resolution, classes and defaults, to build requests from." },
        };
    }
}
