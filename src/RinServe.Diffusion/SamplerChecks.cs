namespace RinServe.Diffusion;

/// <summary>
/// Defaults and bounds of a sampling request, defined once for the API (its <c>Sampling</c> options start from these),
/// the CLI and the API document alike. A model file may name its own default sampler and steps (<c>rin.default_sampler</c>,
/// <c>rin.default_steps</c>, chosen by its trainer's judge); <see cref="Resolve"/> is the one rule that applies them.
/// </summary>
public static class SamplingDefaults
{
    /// <summary>Steps of a request that names none, for a model that names none.</summary>
    public const int Steps = 50;

    /// <summary>The sampler of a request that names none, for a model that names none.</summary>
    public const string Sampler = "ddim";

    /// <summary>The inference schedule of a request that names none (the contract's cosine).</summary>
    public const string Schedule = "cosine";

    /// <summary>Most steps a request may ask for (the CLI's bound; the API's <c>Sampling:MaxSteps</c> starts here).</summary>
    public const int MaxSteps = 1000;

    /// <summary>The most an operator may raise <c>Sampling:MaxSteps</c> to (drills hold long jobs with it).</summary>
    public const int StepsCeiling = 100_000;

    /// <summary>Largest classifier-free guidance weight any request may ask for.</summary>
    public const float MaxGuidance = 20;

    /// <summary>Most images one request may ask for (the API's default limit, <c>Sampling:MaxImagesPerRequest</c>, is lower).</summary>
    public const int MaxImages = 256;

    /// <summary>
    /// The sampler and steps of a request. Neither named: the model's default pair (<c>rin.default_sampler</c> and
    /// <c>rin.default_steps</c>), else <paramref name="fallbackSteps"/> of <see cref="Sampler"/>. Only steps named: the model's
    /// default sampler. Only a sampler named: the model's default steps if it is the model's default sampler (the pair was
    /// judged together), else <paramref name="fallbackSteps"/>.
    /// </summary>
    public static (string Sampler, int Steps) Resolve(ModelSpec spec, string? sampler, int? steps, int fallbackSteps = Steps)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var modelSampler = spec.DefaultSampler ?? Sampler;
        var chosen = sampler ?? modelSampler;
        if (steps is { } named)
        {
            return (chosen, named);
        }

        var sameAsModel = string.Equals(chosen, modelSampler, StringComparison.OrdinalIgnoreCase);
        return (chosen, sameAsModel && spec.DefaultSteps is { } modelSteps ? modelSteps : fallbackSteps);
    }
}

/// <summary>What <see cref="RinSampler"/> refuses before it starts: the caller's mistakes, named.</summary>
internal static class SamplerChecks
{
    /// <summary>Checks the settings against the model; returns the sampler and the parsed schedule.</summary>
    public static (Sampler Sampler, Schedule Schedule) Validate(SamplerSettings settings, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Steps < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.Steps, "Steps must be at least 1");
        }

        if (!Samplers.TryGet(settings.Sampler, out var sampler))
        {
            throw new ArgumentOutOfRangeException(
                nameof(settings), settings.Sampler, $"unknown sampler; allowed: {string.Join(", ", Samplers.Names)}");
        }

        if (!Schedules.TryParse(settings.Schedule, out var schedule, out var error))
        {
            throw new ArgumentException(error, nameof(settings));
        }

        if (!Schedules.TryCheckSteps(schedule!, settings.Steps, out var stepsError))
        {
            throw new ArgumentException(stepsError, nameof(settings));
        }

        if (!float.IsFinite(settings.Guidance) || settings.Guidance < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.Guidance, "Guidance must be a finite number >= 0");
        }

        if (settings.Guidance > 0 && !spec.SupportsGuidance)
        {
            throw new ArgumentException($"model '{spec.Name}' has no null class (rin.null_class), so Guidance must be 0", nameof(settings));
        }

        return (sampler, schedule!);
    }

    public static void ValidateImage(ImageRequest image, ModelSpec spec)
    {
        if (image.ClassId < 0 || image.ClassId >= spec.NumClasses)
        {
            throw new ArgumentOutOfRangeException(
                nameof(image), image.ClassId, $"ClassId must be in 0..{spec.NumClasses - 1} for model '{spec.Name}'");
        }
    }
}
