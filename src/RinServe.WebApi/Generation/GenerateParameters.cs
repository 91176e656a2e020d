using System.ComponentModel;
using Microsoft.AspNetCore.Mvc;

namespace RinServe.WebApi.Generation;

/// <summary>
/// The query parameters of POST /generate, bound as text so that no input can fail binding:
/// every value goes through <see cref="GenerateValidator"/>, which names the bad parameter.
/// </summary>
public sealed class GenerateQuery
{
    /// <summary>Class id (0..num_classes-1) or class name of the model. Required.</summary>
    [FromQuery(Name = "class"), Description("Class id (0..num_classes-1) or class name, e.g. 7 or Sneaker. Required.")]
    public string? Class { get; set; }

    /// <summary>Resolution in pixels; must match a loaded model. Default: the only loaded resolution.</summary>
    [FromQuery(Name = "res"), Description("Resolution; must be one of the loaded models' resolutions (see GET /models).")]
    public string? Res { get; set; }

    /// <summary>Model name from GET /models, when several share a resolution.</summary>
    [FromQuery(Name = "model"), Description("Model name from GET /models, needed when several models share a resolution.")]
    public string? Model { get; set; }

    /// <summary>Sampler steps, 1..Sampling:MaxSteps.</summary>
    [FromQuery(Name = "steps"), Description("Sampler steps, 1..Sampling:MaxSteps (default Sampling:DefaultSteps).")]
    public string? Steps { get; set; }

    /// <summary>ddim (default), ddpm or ddpm-small.</summary>
    [FromQuery(Name = "sampler"), Description("ddim (default), ddpm, ddpm-small.")]
    public string? Sampler { get; set; }

    /// <summary>cosine (default), linear, sigmoid@s,e,tau, cosine@s,e,tau.</summary>
    [FromQuery(Name = "schedule"), Description("cosine (default), linear, sigmoid@s,e,tau or cosine@s,e,tau.")]
    public string? Schedule { get; set; }

    /// <summary>0..2^63-1; random when omitted; always echoed in X-Seed.</summary>
    [FromQuery(Name = "seed"), Description("0..9223372036854775807; random when omitted; echoed in X-Seed. Image k uses seed+k.")]
    public string? Seed { get; set; }

    /// <summary>Classifier-free guidance weight ≥ 0; only for models with a null class. Default: the model's default_guidance from GET /models.</summary>
    [FromQuery(Name = "guidance"), Description("Classifier-free guidance weight, 0..Sampling:MaxGuidance (default: the model's default_guidance from /models, its defaultGuidance field; 0 = unguided); > 0 only for models with a null class.")]
    public string? Guidance { get; set; }

    /// <summary>Number of images, 1..Sampling:MaxImagesPerRequest.</summary>
    [FromQuery(Name = "n"), Description("Number of images, 1..Sampling:MaxImagesPerRequest (default 1).")]
    public string? N { get; set; }

    /// <summary>png (default), jpeg or webp.</summary>
    [FromQuery(Name = "format"), Description("png (default), jpeg or webp.")]
    public string? Format { get; set; }
}

/// <summary>The JSON body form of POST /generate: the same fields as the query. Numbers may also be sent as strings.</summary>
/// <param name="Class">Class id or class name.</param>
/// <param name="Guidance">Classifier-free guidance weight (default: the model's default_guidance from /models; 0 = unguided).</param>
public sealed record GenerateBody(
    [property: System.Text.Json.Serialization.JsonPropertyName("class")] object? Class,
    int? Res = null,
    string? Model = null,
    int? Steps = null,
    string? Sampler = null,
    string? Schedule = null,
    long? Seed = null,
    float? Guidance = null,
    int? N = null,
    string? Format = null);
