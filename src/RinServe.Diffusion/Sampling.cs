using System.Globalization;

namespace RinServe.Diffusion;

/// <summary>
/// How one image is sampled. <paramref name="Sampler"/> is a name of <see cref="Samplers"/> (<c>ddim</c>, <c>ddpm</c>,
/// <c>ddpm-small</c>, <c>dpmpp-2m</c>); <paramref name="Schedule"/> a schedule string of the contract (<c>cosine</c>,
/// <c>linear</c>, <c>cosine@s,e,τ</c>, <c>sigmoid@s,e,τ</c>). Rows of one network call may differ in all of them.
/// </summary>
public sealed record SamplerSettings(int Steps, string Sampler, string Schedule, float Guidance)
{
    /// <summary>
    /// Where along t the <see cref="Guidance"/> weight applies (outside it a step is unguided); null: the model's own
    /// (<see cref="ModelSpec.GuidanceInterval"/>, the whole of t when it names none).
    /// </summary>
    public GuidanceInterval? GuidanceInterval { get; init; }
}

/// <summary>
/// The part of the trajectory that classifier-free guidance acts on (Kynkäänniemi et al. 2024, "Applying guidance in a
/// limited interval"): a step at time t (1 = pure noise, 0 = the image; step i of n is at t = 1 − i/n) is guided when
/// <see cref="Low"/> ≤ t ≤ <see cref="High"/>, and unguided (the class prediction alone) otherwise. Before the interval
/// the null class still runs, so its self-conditioning latents are current when guidance starts; once t is below it, the
/// null class is no longer run (<see cref="SampleRow.NetworkRows"/>). Written "low,high" (<c>rin.guidance_interval</c>,
/// the CLI's --guidance-interval).
/// </summary>
public readonly record struct GuidanceInterval(double Low, double High)
{
    /// <summary>Every step guided: [0, 1].</summary>
    public static GuidanceInterval Whole => new(0, 1);

    public bool IsWhole => Low <= 0 && High >= 1;

    public bool Contains(double t) => t >= Low && t <= High;

    /// <summary>The guidance weight of the step at time <paramref name="t"/>: <paramref name="guidance"/> inside, 0 outside.</summary>
    public float WeightAt(double t, float guidance) => Contains(t) ? guidance : 0f;

    /// <summary>Reads "low,high" with 0 ≤ low &lt; high ≤ 1 (invariant culture); the error says what is allowed.</summary>
    public static bool TryParse(string? text, out GuidanceInterval interval, out string? error)
    {
        interval = Whole;
        error = null;
        var parts = text?.Split(',') ?? [];
        if (parts.Length != 2
            || !double.TryParse(parts[0].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var low)
            || !double.TryParse(parts[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var high))
        {
            error = $"'{UserText.Shorten(text ?? string.Empty)}' is not two numbers 'low,high' (e.g. '0.1,0.8')";
            return false;
        }
        if (!(low >= 0 && high <= 1 && low < high))
        {
            error = $"'{UserText.Shorten(text!)}' must have 0 <= low < high <= 1 (t runs from 1, pure noise, to 0, the image)";
            return false;
        }
        interval = new GuidanceInterval(low, high);
        return true;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Low:R},{High:R}");
}

/// <summary>One image to generate: its class and the seed that alone decides its noise.</summary>
public readonly record struct ImageRequest(long ClassId, ulong Seed);

/// <summary>A generated image: 8-bit pixels in HWC order (row-major, channels interleaved).</summary>
public sealed record GeneratedImage(int Width, int Height, int Channels, byte[] Pixels);

/// <summary>Reported after each finished step; Step runs 1..Steps.</summary>
public readonly record struct StepProgress(int Step, int Steps);
