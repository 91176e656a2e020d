using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace RinServe.WebApi.Hosting;

/// <summary>
/// Documents what minimal-API metadata cannot say: image bodies are binary; POST /generate takes the parameters of
/// <see cref="Generation.GenerateParameters"/> in the query or a JSON body; its request and answers have examples.
/// </summary>
public sealed class SwaggerExamples : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.Responses is not null)
        {
            foreach (var response in operation.Responses.Values)
            {
                if (response.Content is null)
                {
                    continue;
                }
                foreach (var entry in response.Content)
                {
                    if (entry.Key.StartsWith("image/", StringComparison.Ordinal))
                    {
                        entry.Value.Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
                    }
                }
            }
        }
        // Route values and queries the handlers read as text (to name the one at fault), typed as clients send them.
        foreach (var parameter in operation.Parameters ?? [])
        {
            if (parameter is OpenApiParameter { Name: "k" or "preview" } typed)
            {
                typed.Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Minimum = parameter.Name == "k" ? "0" : "1" };
            }
        }
        if (context.ApiDescription.RelativePath?.TrimEnd('/') is not ("generate" or "jobs") || context.ApiDescription.HttpMethod != "POST")
        {
            return;
        }
        operation.Parameters = [.. Generation.GenerateParameters.All.Select(p => new OpenApiParameter
        {
            Name = p.Name,
            In = ParameterLocation.Query,
            Description = p.Description,
            // Typed as a client should send them; the validator still reads each as text and names the one at fault.
            Schema = new OpenApiSchema { Type = p.BodyType ?? JsonSchemaType.String, Format = p.BodyFormat },
        }), new OpenApiParameter
        {
            Name = "Idempotency-Key",
            In = ParameterLocation.Header,
            Description = "1 to 255 visible ASCII characters, e.g. a UUID: a repeat with the same parameters returns the same job, with others a 409.",
            Schema = new OpenApiSchema { Type = JsonSchemaType.String, MaxLength = 255 },
        }];
        operation.Callbacks = new Dictionary<string, IOpenApiCallback> { ["jobEnded"] = JobEndedCallback(context) };
        // Declared here, not with Accepts(): Accepts() makes routing answer other media types with its own
        // 415, which could not name the parameter; the handler reads the body itself.
        operation.RequestBody = new OpenApiRequestBody
        {
            Required = false,
            Description = "Optional: the same fields as the query, as JSON. Numbers may be sent as strings.",
            Content = new Dictionary<string, OpenApiMediaType>
            {
                ["application/json"] = new()
                {
                    Schema = BodySchema(),
                    Example = new JsonObject { ["class"] = "Sneaker", ["res"] = 64, ["steps"] = 50, ["seed"] = 42, ["format"] = "png" },
                },
            },
        };
        if (operation.Responses?.TryGetValue("202", out var accepted) == true && accepted.Content?.TryGetValue("application/json", out var doc) == true)
        {
            doc.Example = new JsonObject
            {
                ["id"] = "q3bZ0vJm3kq1yq9mB1c2xA",
                ["status"] = "queued",
                ["model"] = "fmnist-64",
                ["class"] = 7,
                ["className"] = "Sneaker",
                ["seed"] = 42,
                ["steps"] = 50,
                ["queuePosition"] = 3,
                ["links"] = new JsonObject { ["self"] = "/jobs/q3bZ0vJm3kq1yq9mB1c2xA", ["events"] = "/jobs/q3bZ0vJm3kq1yq9mB1c2xA/events" },
            };
        }
        if (operation.Responses?.TryGetValue("400", out var bad) == true && bad.Content?.TryGetValue("application/problem+json", out var problem) == true)
        {
            problem.Example = new JsonObject
            {
                ["type"] = "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                ["title"] = "Invalid parameter 'res'",
                ["status"] = 400,
                ["detail"] = "no model for res=100; loaded resolutions: 64, 512, 768, 1024",
                ["parameter"] = "res",
            };
        }
    }

    /// <summary>The webhook: what the service POSTs to the request's <c>webhook</c> URL when the job ends.</summary>
    private static OpenApiCallback JobEndedCallback(OperationFilterContext context)
    {
        var header = (string name, string description) => (IOpenApiParameter)new OpenApiParameter
        {
            Name = name, In = ParameterLocation.Header, Required = true, Description = description,
            Schema = new OpenApiSchema { Type = JsonSchemaType.String },
        };
        var post = new OpenApiOperation
        {
            Summary = "The job ended (to the URL in the request's webhook, query or JSON body)",
            Description = "Sent once the job succeeded, failed or was canceled, signed as Standard Webhooks says: verify webhook-signature " +
                "(v1, + base64 HMAC-SHA256 with the bytes of Webhooks:Secret after whsec_, over \"{webhook-id}.{webhook-timestamp}.{body}\"). " +
                "Retried with backoff until a 2xx answer; a repeat carries the same webhook-id, so drop ids already seen.",
            Parameters =
            [
                header("webhook-id", "The job and its end (job_{id}_{state}): the same on every repeat."),
                header("webhook-timestamp", "Unix seconds of this attempt; refuse ones far from now."),
                header("webhook-signature", "v1,<base64 signature>; several may come, separated by spaces."),
            ],
            RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    ["application/json"] = new()
                    {
                        Schema = new OpenApiSchema
                        {
                            Type = JsonSchemaType.Object,
                            Required = new HashSet<string> { "type", "timestamp", "data" },
                            Properties = new Dictionary<string, IOpenApiSchema>
                            {
                                ["type"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "job.succeeded, job.failed or job.canceled" },
                                ["timestamp"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time", Description = "When the job ended." },
                                ["data"] = context.SchemaGenerator.GenerateSchema(typeof(JobDocument), context.SchemaRepository),
                            },
                        },
                    },
                },
            },
            Responses = new OpenApiResponses
            {
                ["2XX"] = new OpenApiResponse { Description = "Received: the delivery ends." },
                ["4XX"] = new OpenApiResponse { Description = "Refused (a bad signature, say): retried like any answer that is not 2xx, up to Webhooks:MaxAttempts." },
            },
        };
        return new OpenApiCallback
        {
            PathItems = new Dictionary<RuntimeExpression, IOpenApiPathItem>
            {
                [RuntimeExpression.Build("{$request.query.webhook}")] = new OpenApiPathItem
                {
                    Operations = new Dictionary<HttpMethod, OpenApiOperation> { [HttpMethod.Post] = post },
                },
            },
        };
    }

    /// <summary>The JSON body of POST /generate: the same fields and descriptions as the query.</summary>
    private static OpenApiSchema BodySchema() => new()
    {
        Type = JsonSchemaType.Object,
        Properties = Generation.GenerateParameters.All.ToDictionary(
            p => p.Name,
            p => (IOpenApiSchema)new OpenApiSchema { Type = p.BodyType, Format = p.BodyFormat, Description = p.Description }),
    };
}
