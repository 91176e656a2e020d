using Microsoft.OpenApi;

namespace RinServe.WebApi.Generation;

/// <summary>
/// One parameter of POST /generate. It comes as text in the query or as a field of the JSON body;
/// <see cref="GenerateValidator"/> reads every value, Swagger shows <see cref="Description"/> for both forms.
/// </summary>
/// <param name="Name">The query parameter and JSON field name.</param>
/// <param name="Description">What it means and allows; Swagger shows it on the query parameter and the body field.</param>
/// <param name="BodyType">The JSON type of the body field (numbers may also be sent as strings); null: a number or a string.</param>
/// <param name="BodyFormat">The OpenAPI format of the body field (int32, int64, float), if any.</param>
public sealed record GenerateParameter(string Name, string Description, JsonSchemaType? BodyType, string? BodyFormat = null);

/// <summary>The parameters of POST /generate, declared once: the validator, the request reader and Swagger read this list.</summary>
public static class GenerateParameters
{
    public static readonly IReadOnlyList<GenerateParameter> All =
    [
        new("class", "Class id (0..num_classes-1) or class name, e.g. 7 or Sneaker (any case). For classes named like 'ĳ (U+0133)', " +
            "also the character, case-sensitive (ĳ), or the code point (U+0133). A number is an id: the character 1 is U+0031. Required.", null),
        new("res", "Resolution; must be one of the loaded models' resolutions (see GET /models). Where several models share it, " +
            "a request without model gets the one of the default family (RinServe:DefaultFamily; isDefault in GET /models).", JsonSchemaType.Integer, "int32"),
        new("model", "Model name from GET /models (fmnist-768), or a family name with res (model=fmnist&res=768), " +
            "to pick another model than the default at that resolution.", JsonSchemaType.String),
        new("steps", "Sampler steps, 1..Sampling:MaxSteps (default: the model's defaultSteps from /models, for its default sampler; else Sampling:DefaultSteps).", JsonSchemaType.Integer, "int32"),
        new("sampler", "ddim, ddpm, ddpm-small or dpmpp-2m (DPM-Solver++(2M), few steps); default: the model's defaultSampler from /models (else ddim).", JsonSchemaType.String),
        new("schedule", "cosine (default), linear, sigmoid@s,e,tau or cosine@s,e,tau.", JsonSchemaType.String),
        new("seed", "0..9223372036854775807; random when omitted; echoed in X-Seed. Image k uses seed+k.", JsonSchemaType.Integer, "int64"),
        new("guidance", "Classifier-free guidance weight, 0..Sampling:MaxGuidance (default: the model's default_guidance from /models, " +
            "its defaultGuidance field; 0 = unguided); > 0 only for models with a null class.", JsonSchemaType.Number, "float"),
        new("n", "Number of images, 1..Sampling:MaxImagesPerRequest (default 1).", JsonSchemaType.Integer, "int32"),
        new("format", "png (default), jpeg or webp.", JsonSchemaType.String),
        new("webhook", "An http or https URL told when the job ends (succeeded, failed or canceled): a POST of " +
            "{type: job.succeeded|job.failed|job.canceled, timestamp, data: the job document}, signed as Standard Webhooks says " +
            "(webhook-id, webhook-timestamp, webhook-signature), retried with backoff until a 2xx. Its host must resolve to public " +
            "addresses unless Webhooks:AllowedHosts lists it; redirects are not followed. Needs Webhooks:Secret on the deployment.",
            JsonSchemaType.String, "uri"),
    ];

    /// <summary>The accepted names, in the order error messages list them.</summary>
    public static readonly IReadOnlyList<string> Names = [.. All.Select(p => p.Name)];

    /// <summary>The image formats of <c>format</c>.</summary>
    public static readonly IReadOnlyList<string> Formats = ["png", "jpeg", "webp"];
}
