namespace RinServe.Diffusion;

/// <summary>The update rule of Algorithm 3. DDPM has the two variance choices of the contract.</summary>
public enum SamplerKind { Ddim, Ddpm, DdpmSmallVariance }

/// <summary>
/// Settings shared by every image of one batch: jobs are batched together only when these are equal.
/// <paramref name="Schedule"/> is a schedule string of the contract (<c>cosine</c>, <c>linear</c>,
/// <c>cosine@s,e,τ</c>, <c>sigmoid@s,e,τ</c>).
/// </summary>
public sealed record SamplerSettings(int Steps, SamplerKind Sampler, string Schedule, float Guidance);

/// <summary>One image to generate: its class and the seed that alone decides its noise.</summary>
public readonly record struct ImageRequest(long ClassId, ulong Seed);

/// <summary>A generated image: 8-bit pixels in HWC order (row-major, channels interleaved).</summary>
public sealed record GeneratedImage(int Width, int Height, int Channels, byte[] Pixels);

/// <summary>Reported after each finished step; Step runs 1..Steps.</summary>
public readonly record struct StepProgress(int Step, int Steps);

/// <summary>The samplers' names in requests, files and the CLI: <c>ddim</c>, <c>ddpm</c>, <c>ddpm-small</c>.</summary>
public static class SamplerNames
{
    public static readonly IReadOnlyList<string> All = ["ddim", "ddpm", "ddpm-small"];

    public static string Name(SamplerKind kind) => kind switch
    {
        SamplerKind.Ddpm => "ddpm",
        SamplerKind.DdpmSmallVariance => "ddpm-small",
        _ => "ddim",
    };

    /// <summary>Case-insensitive; <c>ddpm_small</c> (the trainer's spelling) is read as <c>ddpm-small</c>.</summary>
    public static bool TryParse(string text, out SamplerKind kind)
    {
        switch (text.ToLowerInvariant())
        {
            case "ddim": kind = SamplerKind.Ddim; return true;
            case "ddpm": kind = SamplerKind.Ddpm; return true;
            case "ddpm-small" or "ddpm_small": kind = SamplerKind.DdpmSmallVariance; return true;
            default: kind = SamplerKind.Ddim; return false;
        }
    }
}
