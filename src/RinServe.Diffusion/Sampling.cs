namespace RinServe.Diffusion;

/// <summary>
/// How one image is sampled. <paramref name="Sampler"/> is a name of <see cref="Samplers"/> (<c>ddim</c>, <c>ddpm</c>,
/// <c>ddpm-small</c>, <c>dpmpp-2m</c>); <paramref name="Schedule"/> a schedule string of the contract (<c>cosine</c>,
/// <c>linear</c>, <c>cosine@s,e,τ</c>, <c>sigmoid@s,e,τ</c>). Rows of one network call may differ in all four.
/// </summary>
public sealed record SamplerSettings(int Steps, string Sampler, string Schedule, float Guidance);

/// <summary>One image to generate: its class and the seed that alone decides its noise.</summary>
public readonly record struct ImageRequest(long ClassId, ulong Seed);

/// <summary>A generated image: 8-bit pixels in HWC order (row-major, channels interleaved).</summary>
public sealed record GeneratedImage(int Width, int Height, int Channels, byte[] Pixels);

/// <summary>Reported after each finished step; Step runs 1..Steps.</summary>
public readonly record struct StepProgress(int Step, int Steps);
