using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using RinServe.Diffusion;
using RinServe.Jobs;
using RinServe.Onnx;
using RinServe.WebApi.Hosting;

namespace RinServe.WebApi.Generation;

/// <summary>A bad request parameter: which one, and what is allowed.</summary>
public sealed record ParameterError(string Parameter, string Message);

/// <summary>A valid request: the job to queue and a fingerprint of the parameters as given (for Idempotency-Key).</summary>
public sealed record ValidGenerate(JobSpec Spec, LoadedModel Model, string Fingerprint);

/// <summary>The one validation path of generation parameters, whether they came in the query or a JSON body.</summary>
public sealed class GenerateValidator(ModelRegistry registry, IOptions<SamplingOptions> options, IOptions<Webhooks.WebhooksOptions> webhooks)
{
    private readonly SamplingOptions _options = options.Value;
    private readonly bool _webhooksOn = webhooks.Value.Enabled;

    public ParameterError? Validate(IReadOnlyDictionary<string, string> input, string? owner, out ValidGenerate? valid)
    {
        valid = null;
        string? Get(string name) => input.TryGetValue(name, out var v) ? v.Trim() : null;

        // .NET number parsing skips trailing NULs ("7\0" reads as 7): no parameter may hold a control character.
        foreach (var name in GenerateParameters.Names)
        {
            if (input.TryGetValue(name, out var text) && text.Any(char.IsControl))
            {
                return new(name, $"{name} must not contain control characters (such as %00 or a line break)");
            }
        }

        if (ResolveModel(Get("res"), Get("model"), out var model) is { } modelError)
        {
            return modelError;
        }
        var spec = model!.Spec;

        var classText = Get("class");
        if (string.IsNullOrEmpty(classText))
        {
            return new("class", $"class is required: {ClassesAllowed(spec)}");
        }
        switch (spec.FindClass(classText, out var classId))
        {
            case ClassLookup.OutOfRange:
                return new("class", $"class {classText} is out of range for model '{spec.Name}': {ClassesAllowed(spec)}");
            case ClassLookup.Unknown:
                return new("class", $"class '{UserText.Shorten(classText)}' is neither an id nor a class of model '{spec.Name}': {ClassesAllowed(spec)}");
        }

        int? namedSteps = null;
        if (Get("steps") is { } stepsText)
        {
            if (!TryInt(stepsText, 1, _options.MaxSteps, out var parsedSteps))
            {
                return new("steps", $"steps must be an integer from 1 to {_options.MaxSteps}; got '{UserText.Shorten(stepsText)}'");
            }
            namedSteps = parsedSteps;
        }

        string? namedSampler = null;
        if (Get("sampler") is { } samplerText)
        {
            if (!Samplers.TryGet(samplerText, out var parsedSampler))
            {
                return new("sampler", $"unknown sampler '{UserText.Shorten(samplerText)}'; allowed: {string.Join(", ", Samplers.Names)}");
            }
            namedSampler = parsedSampler.Name;
        }

        var (sampler, steps) = SamplingDefaults.Resolve(spec, namedSampler, namedSteps, _options.DefaultSteps);
        steps = Math.Min(steps, _options.MaxSteps);

        var schedule = SamplingDefaults.Schedule;
        if (Get("schedule") is { } scheduleText)
        {
            if (!Schedules.TryParse(scheduleText, out var parsed, out var scheduleError))
            {
                return new("schedule", $"{scheduleError}");
            }
            if (!Schedules.TryCheckSteps(parsed!, steps, out var stepsError))
            {
                return new("schedule", stepsError!);
            }
            schedule = parsed!.Text;
        }

        ulong? givenSeed = null;
        if (Get("seed") is { } seedText)
        {
            if (!ulong.TryParse(seedText, NumberStyles.None, CultureInfo.InvariantCulture, out var s) || s > long.MaxValue)
            {
                return new("seed", $"seed must be an integer from 0 to {long.MaxValue}; got '{UserText.Shorten(seedText)}'");
            }
            givenSeed = s;
        }

        var guidance = DefaultGuidance(spec, _options);
        if (Get("guidance") is { } guidanceText)
        {
            if (!float.TryParse(guidanceText, NumberStyles.Float, CultureInfo.InvariantCulture, out guidance)
                || !float.IsFinite(guidance) || guidance < 0 || guidance > _options.MaxGuidance)
            {
                return new("guidance", $"guidance must be a number from 0 to {_options.MaxGuidance.ToString(CultureInfo.InvariantCulture)}; got '{UserText.Shorten(guidanceText)}'");
            }
            if (guidance > 0 && !spec.SupportsGuidance)
            {
                return new("guidance", $"model '{spec.Name}' was trained without a null class, so it supports only guidance=0");
            }
        }

        var count = 1;
        if (Get("n") is { } countText && !TryInt(countText, 1, _options.MaxImagesPerRequest, out count))
        {
            return new("n", $"n must be an integer from 1 to {_options.MaxImagesPerRequest}; got '{UserText.Shorten(countText)}'");
        }

        var format = "png";
        if (Get("format") is { } formatText)
        {
            format = formatText.ToLowerInvariant();
            if (!GenerateParameters.Formats.Contains(format))
            {
                return new("format", $"unknown format '{UserText.Shorten(formatText)}'; allowed: {string.Join(", ", GenerateParameters.Formats)}");
            }
        }

        Uri? webhook = null;
        if (Get("webhook") is { Length: > 0 } webhookText)
        {
            if (!_webhooksOn)
            {
                return new("webhook", "webhooks are off on this deployment (Webhooks:Secret is not set)");
            }
            if (Webhooks.WebhookAddressPolicy.CheckShape(webhookText, out webhook) is { } shape)
            {
                return new("webhook", shape);
            }
        }

        var seed = givenSeed ?? RandomSeed();
        var job = new JobSpec(spec.Name, steps, sampler, schedule, guidance, classId, seed, count, format, owner, webhook?.AbsoluteUri);
        // The fingerprint holds the seed only when the caller chose it, so a retry without a seed is "the same request";
        // it holds the guidance as resolved, so omitting it and naming the model's default are the same request.
        var fingerprintSource = JsonSerializer.Serialize(new { spec.Name, steps, sampler, schedule, guidance, classId, givenSeed, count, format, webhook = webhook?.AbsoluteUri });
        var fingerprint = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(fingerprintSource)));
        valid = new ValidGenerate(job, model, fingerprint);
        return null;
    }

    /// <summary>
    /// The guidance weight of a request that names none: the model's <c>rin.default_guidance</c>, lowered to
    /// Sampling:MaxGuidance when it is larger. GET /models shows this value.
    /// </summary>
    public static float DefaultGuidance(ModelSpec spec, SamplingOptions options) => Math.Min(spec.DefaultGuidance, options.MaxGuidance);

    /// <summary>The sampler and steps of a request that names neither (<see cref="SamplingDefaults.Resolve"/>, steps at most Sampling:MaxSteps). GET /models shows them.</summary>
    public static (string Sampler, int Steps) DefaultSampling(ModelSpec spec, SamplingOptions options)
    {
        var (sampler, steps) = SamplingDefaults.Resolve(spec, null, null, options.DefaultSteps);
        return (sampler, Math.Min(steps, options.MaxSteps));
    }

    /// <summary>Reads <c>res</c> as a number; the registry resolves it and <c>model</c> to one loaded model.</summary>
    private ParameterError? ResolveModel(string? resText, string? name, out LoadedModel? model)
    {
        model = null;
        int? res = null;
        if (!string.IsNullOrEmpty(resText))
        {
            if (!int.TryParse(resText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) || parsed <= 0)
            {
                return new("res", $"res must be a positive integer; loaded resolutions: {string.Join(", ", registry.Resolutions)}");
            }
            res = parsed;
        }
        return registry.TryResolve(res, string.IsNullOrEmpty(name) ? null : name, out model, out var error, out var parameter)
            ? null
            : new(parameter!, error!);
    }

    /// <summary>What class allows, short for any number of classes; GET /models has them all.</summary>
    private static string ClassesAllowed(ModelSpec spec) =>
        spec.NumClasses <= ModelSpec.MaxListedClasses ? spec.DescribeClasses() : $"{spec.DescribeClasses()}; GET /models lists them";

    private static bool TryInt(string text, int min, int max, out int value) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value) && value >= min && value <= max;

    private static ulong RandomSeed()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return BitConverter.ToUInt64(bytes) & long.MaxValue;
    }
}
