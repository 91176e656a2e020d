namespace RinServe.Diffusion;

/// <summary>What <see cref="RinSampler"/> refuses before it starts: the caller's mistakes, named.</summary>
internal static class SamplerChecks
{
    /// <summary>Checks the settings and requests against the model; returns the parsed schedule.</summary>
    public static Schedule Validate(SamplerSettings settings, IReadOnlyList<ImageRequest> images, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(images);
        if (settings.Steps < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.Steps, "Steps must be at least 1");
        }

        if (!Enum.IsDefined(settings.Sampler))
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.Sampler, "unknown sampler");
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

        if (images.Count == 0)
        {
            throw new ArgumentException("at least one image is needed", nameof(images));
        }

        foreach (var image in images)
        {
            if (image.ClassId < 0 || image.ClassId >= spec.NumClasses)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(images), image.ClassId, $"ClassId must be in 0..{spec.NumClasses - 1} for model '{spec.Name}'");
            }
        }

        return schedule!;
    }
}
