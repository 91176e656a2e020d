using System.Buffers;
using System.Numerics.Tensors;

namespace RinServe.Diffusion;

/// <summary>
/// One image being sampled: its class and seed, its own settings (steps, sampler, schedule, guidance), where it is
/// (<see cref="StepsDone"/>), its x_t, its self-conditioning latents (one set per guidance half), its sampler's history and
/// its noise stream (its seed alone decides its x_T and every z). A network call takes any set of rows, each at its own
/// step (<see cref="RowStepper"/>), so what other rows are in a batch, or where they are, never changes an image.
/// Made by <see cref="RinSampler.CreateRow"/>; owns pooled memory until disposed. Not thread-safe.
/// </summary>
public sealed class SampleRow : IDisposable
{
    private readonly ModelSpec _spec;
    private float[]? _x;
    private float[]? _x0;
    private float[]? _latents;
    private float[]? _history;
    private float[]? _z;

    internal SampleRow(ImageRequest image, SamplerSettings settings, Sampler sampler, Schedule schedule, ModelSpec spec, INoiseSource noise)
    {
        Image = image;
        Settings = settings with { Sampler = sampler.Name, GuidanceInterval = settings.GuidanceInterval ?? spec.GuidanceInterval };
        SamplerUnit = sampler;
        Schedule = schedule;
        _spec = spec;
        var floats = ArrayPool<float>.Shared;
        var perImage = spec.PixelsPerImage;
        _x = floats.Rent(perImage);
        _x0 = floats.Rent(perImage);
        _latents = floats.Rent(LatentSets * spec.LatentsPerImage);
        Latents(0).Clear(); // latent self-conditioning starts from zeros (RIN paper §3.2)
        if (Guided)
        {
            Latents(1).Clear();
        }

        if (sampler.HistoryImages > 0)
        {
            _history = floats.Rent(sampler.HistoryImages * perImage);
            History.Clear();
        }

        if (sampler.Stochastic)
        {
            _z = floats.Rent(perImage);
        }

        noise.Fill(image.Seed, INoiseSource.InitialStep, X);
        Statistics = StepKernels.Statistics(X);
    }

    public ImageRequest Image { get; }

    /// <summary>The row's settings: the sampler by its canonical name, the guidance interval resolved (the model's when it named none).</summary>
    public SamplerSettings Settings { get; }

    /// <summary>Finished steps, 0..Settings.Steps.</summary>
    public int StepsDone { get; internal set; }

    public bool Done => StepsDone == Settings.Steps;

    /// <summary>
    /// Rows this image adds to its next network call: 2 while its guidance can still act (class and null class), else 1. Once
    /// t is below the guidance interval, no later step is guided (t only falls), so the null class is not run again: its
    /// prediction would go unused. Before the interval it runs, to keep its self-conditioning latents current.
    /// </summary>
    public int NetworkRows => NeedsNullClass ? 2 : 1;

    internal Sampler SamplerUnit { get; }

    internal Schedule Schedule { get; }

    internal bool Guided => Settings.Guidance > 0;

    /// <summary>Whether the next step runs the null class: guided, and t (as <see cref="StepTimes.T"/>) not yet below the interval.</summary>
    internal bool NeedsNullClass => Guided && StepTimes.TimeOf(StepsDone, Settings.Steps) >= Settings.GuidanceInterval!.Value.Low;

    /// <summary>Σx and Σx² of x_t, for the next step's input normalization.</summary>
    internal (double Sum, double SumOfSquares) Statistics { get; set; }

    /// <summary>Set by parity tests: x̂0 written at every step, not only at the last.</summary>
    internal bool KeepX0 { get; init; }

    internal Span<float> X => Live(_x).AsSpan(0, _spec.PixelsPerImage);

    /// <summary>The clipped x̂0 of the latest step that wrote it (always the last step; others when asked).</summary>
    internal Span<float> X0 => Live(_x0).AsSpan(0, _spec.PixelsPerImage);

    internal Span<float> History => _history is null ? Span<float>.Empty : Live(_history).AsSpan(0, SamplerUnit.HistoryImages * _spec.PixelsPerImage);

    internal Span<float> Z => _z is null ? Span<float>.Empty : Live(_z).AsSpan(0, _spec.PixelsPerImage);

    internal StepTimes Times => StepTimes.At(Schedule, StepsDone, Settings.Steps);

    private int LatentSets => Guided ? 2 : 1;

    /// <summary>The self-conditioning latents of guidance half <paramref name="half"/> (0: the class, 1: the null class).</summary>
    internal Span<float> Latents(int half) => Live(_latents).AsSpan(half * _spec.LatentsPerImage, _spec.LatentsPerImage);

    /// <summary>
    /// The finished image: 8-bit pixels of clip(x̂0 / b / 2 + 0.5, 0, 1). Throws <see cref="SamplingFailedException"/> when the
    /// arithmetic broke down (a NaN would quietly become a black pixel; an image made of one is no image).
    /// </summary>
    public GeneratedImage ToImage()
    {
        if (!Done)
        {
            throw new InvalidOperationException($"the row has done {StepsDone} of its {Settings.Steps} steps");
        }

        var x0 = X0;
        if (float.IsNaN(TensorPrimitives.Sum(x0)))
        {
            throw new SamplingFailedException(
                $"the sampler produced NaN (schedule '{Settings.Schedule}', {Settings.Steps} steps, sampler {Settings.Sampler}); no image was made");
        }

        var unit = ArrayPool<float>.Shared.Rent(x0.Length);
        try
        {
            var span = unit.AsSpan(0, x0.Length);
            ImageOutput.ToUnitRange(x0, _spec.InputScale, span);
            return ImageOutput.ToImage(span, _spec);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(unit);
        }
    }

    public void Dispose()
    {
        var floats = ArrayPool<float>.Shared;
        foreach (var array in new[] { _x, _x0, _latents, _history, _z })
        {
            if (array is not null)
            {
                floats.Return(array);
            }
        }

        (_x, _x0, _latents, _history, _z) = (null, null, null, null, null);
    }

    private static float[] Live(float[]? array) => array ?? throw new ObjectDisposedException(nameof(SampleRow));
}
