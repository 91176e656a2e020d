using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace RinServe.Diffusion;

/// <summary>
/// Algorithm 3 of Chen 2023 (MODEL-CONTRACT.md, "Sampling"): DDIM or DDPM over a RIN denoiser with
/// latent self-conditioning, input variance normalization and classifier-free guidance.
/// Holds no per-call state, so one instance may serve concurrent calls as far as the sampler goes;
/// the <see cref="IDenoiser"/> decides how many callers it takes (ONNX ones: one at a time).
/// </summary>
public sealed class RinSampler
{
    /// <summary>Floor of the per-example std in the input normalization (the Python reference's epsilon).</summary>
    public const float NormalizationEpsilon = 1e-6f;

    private readonly IDenoiser _denoiser;
    private readonly INoiseSource _noise;

    public RinSampler(IDenoiser denoiser)
        : this(denoiser, PhiloxNoise.Instance)
    {
    }

    public RinSampler(IDenoiser denoiser, INoiseSource noise)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(noise);
        _denoiser = denoiser;
        _noise = noise;
    }

    public ModelSpec Spec => _denoiser.Spec;

    /// <summary>
    /// A row for one image, ready for its first step (x_T drawn from its seed). The settings and class are checked against
    /// the model first (<see cref="ArgumentException"/> naming the mistake). The caller owns the row: dispose it when done.
    /// </summary>
    public SampleRow CreateRow(ImageRequest image, SamplerSettings settings)
    {
        var (sampler, schedule) = SamplerChecks.Validate(settings, Spec);
        SamplerChecks.ValidateImage(image, Spec);
        return new SampleRow(image, settings, sampler, schedule, Spec, _noise);
    }

    /// <summary>A stepper for one sampling loop over rows of this model (see <see cref="RowStepper"/>).</summary>
    public RowStepper CreateStepper() => new(_denoiser, _noise);

    /// <summary>
    /// Generates one image per request, all in one batch. Cancellation is checked before each step
    /// (throws <see cref="OperationCanceledException"/>); <paramref name="onStep"/> runs after each step.
    /// </summary>
    public IReadOnlyList<GeneratedImage> Generate(
        SamplerSettings settings,
        IReadOnlyList<ImageRequest> images,
        Action<StepProgress>? onStep = null,
        CancellationToken cancellationToken = default) =>
        Generate(settings, images, onStep, previews: null, cancellationToken);

    /// <summary>
    /// As above; <paramref name="previews"/> also gets low-resolution x̂0 previews of the images and steps it asks for,
    /// each before the <paramref name="onStep"/> call of its step.
    /// </summary>
    public IReadOnlyList<GeneratedImage> Generate(
        SamplerSettings settings,
        IReadOnlyList<ImageRequest> images,
        Action<StepProgress>? onStep,
        IPreviewSink? previews,
        CancellationToken cancellationToken)
    {
        var rows = Run(settings, images, keepX0: false, observer: null, onStep, previews, cancellationToken);
        try
        {
            return rows.Select(row => row.ToImage()).ToArray();
        }
        finally
        {
            DisposeAll(rows);
        }
    }

    /// <summary>Sees x and the clipped x̂0 of the whole batch after each step; for parity tests.</summary>
    internal delegate void StepObserver(int step, ReadOnlySpan<float> x, ReadOnlySpan<float> x0);

    /// <summary>Runs the loop and writes the last clipped x̂0 ([B, C, H, W]) to <paramref name="finalX0"/>.</summary>
    internal void Sample(
        SamplerSettings settings,
        IReadOnlyList<ImageRequest> images,
        Span<float> finalX0,
        StepObserver? observer,
        Action<StepProgress>? onStep,
        CancellationToken cancellationToken,
        IPreviewSink? previews = null)
    {
        var perImage = Spec.PixelsPerImage;
        ArgumentNullException.ThrowIfNull(images);
        if (finalX0.Length != images.Count * perImage)
        {
            throw new ArgumentException($"finalX0 must hold {images.Count * perImage} values", nameof(finalX0));
        }

        var x = observer is null ? [] : new float[images.Count * perImage];
        var x0 = observer is null ? [] : new float[images.Count * perImage];
        Action<IReadOnlyList<SampleRow>, int>? watch = observer is null ? null : (rows, step) =>
        {
            for (var b = 0; b < rows.Count; b++)
            {
                rows[b].X.CopyTo(x.AsSpan(b * perImage, perImage));
                rows[b].X0.CopyTo(x0.AsSpan(b * perImage, perImage));
            }

            observer(step, x, x0);
        };
        var done = Run(settings, images, keepX0: observer is not null, watch, onStep, previews, cancellationToken);
        try
        {
            for (var b = 0; b < done.Length; b++)
            {
                done[b].X0.CopyTo(finalX0.Slice(b * perImage, perImage));
            }
        }
        finally
        {
            DisposeAll(done);
        }
    }

    /// <summary>All images as rows of one loop, every row at the same step; returns the finished rows (the caller disposes them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once per request: tier-0 code would stay for the whole call
    private SampleRow[] Run(
        SamplerSettings settings,
        IReadOnlyList<ImageRequest> images,
        bool keepX0,
        Action<IReadOnlyList<SampleRow>, int>? observer,
        Action<StepProgress>? onStep,
        IPreviewSink? previews,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(images);
        var (sampler, schedule) = SamplerChecks.Validate(settings, Spec);
        if (images.Count == 0)
        {
            throw new ArgumentException("at least one image is needed", nameof(images));
        }

        foreach (var image in images)
        {
            SamplerChecks.ValidateImage(image, Spec);
        }

        var rows = new SampleRow[images.Count];
        try
        {
            for (var b = 0; b < rows.Length; b++)
            {
                rows[b] = new SampleRow(images[b], settings, sampler, schedule, Spec, _noise) { KeepX0 = keepX0 };
            }

            using var stepper = CreateStepper();
            for (var i = 0; i < settings.Steps; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                stepper.Step(rows, previews);
                observer?.Invoke(rows, i);
                onStep?.Invoke(new StepProgress(i + 1, settings.Steps));
            }

            return rows;
        }
        catch
        {
            DisposeAll(rows);
            throw;
        }
    }

    private static void DisposeAll(SampleRow?[] rows)
    {
        foreach (var row in rows)
        {
            row?.Dispose();
        }
    }

    /// <summary>x_in = x / max(std(x), ε), std over C,H,W of one example (population; Chen 2023 §3.3).</summary>
    internal static void NetworkInput(ReadOnlySpan<float> x, Span<float> destination, bool normalize, (double Sum, double SumOfSquares) statistics)
    {
        if (!normalize)
        {
            x.CopyTo(destination);
            return;
        }

        var (sum, squares) = statistics;
        var mean = sum / x.Length;
        var std = (float)Math.Sqrt(Math.Max(squares / x.Length - mean * mean, 0.0));
        TensorPrimitives.Divide(x, MathF.Max(std, NormalizationEpsilon), destination);
    }
}

/// <summary>The sampler's arithmetic broke down (NaN): the batch has no valid images to return.</summary>
public sealed class SamplingFailedException(string message) : Exception(message);
