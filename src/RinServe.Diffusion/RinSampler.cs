using System.Buffers;
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
        ArgumentNullException.ThrowIfNull(images);
        var spec = _denoiser.Spec;
        var perImage = spec.PixelsPerImage;
        var x0 = ArrayPool<float>.Shared.Rent(images.Count * perImage);
        try
        {
            var finalX0 = x0.AsSpan(0, images.Count * perImage);
            Sample(settings, images, finalX0, observer: null, onStep, cancellationToken, previews);
            for (var b = 0; b < images.Count; b++)
            {
                // A NaN would quietly become a black pixel; an image made of one is no image.
                if (float.IsNaN(TensorPrimitives.Sum(finalX0.Slice(b * perImage, perImage))))
                {
                    throw new SamplingFailedException(
                        $"the sampler produced NaN in image {b} of the batch (schedule '{settings.Schedule}', {settings.Steps} steps, sampler {settings.Sampler}); no image was made");
                }
            }

            ToUnitRange(finalX0, spec.InputScale, finalX0);
            var result = new GeneratedImage[images.Count];
            for (var b = 0; b < images.Count; b++)
            {
                result[b] = ToImage(finalX0.Slice(b * perImage, perImage), spec);
            }

            return result;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(x0);
        }
    }

    /// <summary>Sees x and the clipped x̂0 of the whole batch after each step; for parity tests.</summary>
    internal delegate void StepObserver(int step, ReadOnlySpan<float> x, ReadOnlySpan<float> x0);

    /// <summary>Runs the loop and writes the last clipped x̂0 ([B, C, H, W]) to <paramref name="finalX0"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once per request: tier-0 code would stay for the whole call
    internal void Sample(
        SamplerSettings settings,
        IReadOnlyList<ImageRequest> images,
        Span<float> finalX0,
        StepObserver? observer,
        Action<StepProgress>? onStep,
        CancellationToken cancellationToken,
        IPreviewSink? previews = null)
    {
        var spec = _denoiser.Spec;
        var schedule = Validate(settings, images, spec);
        var batch = images.Count;
        var guided = settings.Guidance > 0;
        var netBatch = guided ? 2 * batch : batch;
        var perImage = spec.PixelsPerImage;
        var perLatents = spec.LatentsPerImage;
        var steps = settings.Steps;
        var stochastic = settings.Sampler != SamplerKind.Ddim;
        if (finalX0.Length != batch * perImage)
        {
            throw new ArgumentException($"finalX0 must hold {batch * perImage} values", nameof(finalX0));
        }

        var floats = ArrayPool<float>.Shared;
        var x = floats.Rent(batch * perImage);
        var netX = floats.Rent(netBatch * perImage);
        var pred = floats.Rent(netBatch * perImage);
        var stepNoise = floats.Rent(batch * perImage);
        var latentsA = floats.Rent(netBatch * perLatents);
        var latentsB = floats.Rent(netBatch * perLatents);
        var gammaIn = floats.Rent(netBatch);
        var classIds = ArrayPool<long>.Shared.Rent(netBatch);
        var statistics = ArrayPool<(double Sum, double SumOfSquares)>.Shared.Rent(batch);
        try
        {
            var xs = x.AsSpan(0, batch * perImage);
            var x0 = finalX0;
            var noise = stepNoise.AsSpan(0, batch * perImage);
            var netIn = netX.AsSpan(0, netBatch * perImage);
            var netPred = pred.AsSpan(0, netBatch * perImage);
            var gammas = gammaIn.AsSpan(0, netBatch);
            var classes = classIds.AsSpan(0, netBatch);
            var latentsIn = latentsA.AsSpan(0, netBatch * perLatents);
            var latentsOut = latentsB.AsSpan(0, netBatch * perLatents);

            // Latent self-conditioning starts from zeros (RIN paper §3.2).
            latentsIn.Clear();
            for (var b = 0; b < batch; b++)
            {
                _noise.Fill(images[b].Seed, INoiseSource.InitialStep, xs.Slice(b * perImage, perImage));
                classes[b] = images[b].ClassId;
                if (guided)
                {
                    classes[batch + b] = spec.NullClass!.Value;
                }
            }

            using var noiseAhead = stochastic ? new NoiseAhead(_noise, images, stepNoise, perImage) : null;
            var guidanceCond = (float)(1.0 + settings.Guidance);
            for (var i = 0; i < steps; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();

                // Step times and scalar coefficients in float64, cast once (the reference does the same).
                var t = 1.0 - (double)i / steps;
                var tNext = Math.Max(1.0 - (double)(i + 1) / steps, 0.0);
                var g = schedule.Gamma(t);
                var gNext = schedule.Gamma(tNext);

                // DDPM ancestral step (Ho et al. 2020, eq. 11) in γ form: α = clip(g/g', 0, 1).
                var alpha = Math.Clamp(g / gNext, 0.0, 1.0);
                var variance = settings.Sampler == SamplerKind.DdpmSmallVariance
                    ? (1.0 - gNext) / (1.0 - g) * (1.0 - alpha)
                    : 1.0 - alpha;
                var coefficients = new StepCoefficients(
                    spec.Prediction,
                    (float)Math.Sqrt(g),
                    (float)Math.Sqrt(1.0 - g),
                    spec.InputScale,
                    guided,
                    guidanceCond,
                    settings.Guidance,
                    stochastic,
                    (float)Math.Sqrt(gNext),
                    (float)Math.Sqrt(1.0 - gNext),
                    (float)((1.0 - alpha) / Math.Sqrt(1.0 - g)),
                    (float)Math.Sqrt(alpha),
                    (float)Math.Sqrt(variance));

                // Only the network's copy of x_t is normalized (contract, "Sampling").
                for (var b = 0; b < batch; b++)
                {
                    var image = xs.Slice(b * perImage, perImage);
                    if (i == 0)
                    {
                        statistics[b] = StepKernels.Statistics(image);
                    }

                    NetworkInput(image, netIn.Slice(b * perImage, perImage), spec.NormalizeInput, statistics[b]);
                }

                if (guided)
                {
                    netIn[..(batch * perImage)].CopyTo(netIn[(batch * perImage)..]);
                }

                gammas.Fill((float)g);
                noiseAhead?.Start(i);
                _denoiser.Denoise(netBatch, netIn, gammas, classes, latentsIn, netPred, latentsOut);

                // Each example (and each guidance half) gets back its own latents.
                var swap = latentsIn;
                latentsIn = latentsOut;
                latentsOut = swap;

                // x̂0 is only read after the last step (and by an observer, or for a preview that was asked for).
                var x0Read = observer is not null || i == steps - 1;
                noiseAhead?.Wait();
                for (var b = 0; b < batch; b++)
                {
                    var preview = previews is not null && previews.Wants(i + 1, b);
                    var writeX0 = x0Read || preview;
                    var z = stochastic ? noise.Slice(b * perImage, perImage) : Span<float>.Empty;
                    statistics[b] = StepKernels.Update(
                        coefficients,
                        xs.Slice(b * perImage, perImage),
                        netPred.Slice(b * perImage, perImage),
                        guided ? netPred.Slice((batch + b) * perImage, perImage) : ReadOnlySpan<float>.Empty,
                        z,
                        writeX0 ? x0.Slice(b * perImage, perImage) : Span<float>.Empty);
                    if (preview)
                    {
                        previews!.Take(i + 1, b, X0Preview.Downsample(x0.Slice(b * perImage, perImage), spec));
                    }
                }

                observer?.Invoke(i, xs, x0);
                onStep?.Invoke(new StepProgress(i + 1, steps));
            }
        }
        finally
        {
            floats.Return(x);
            floats.Return(netX);
            floats.Return(pred);
            floats.Return(stepNoise);
            floats.Return(latentsA);
            floats.Return(latentsB);
            floats.Return(gammaIn);
            ArrayPool<long>.Shared.Return(classIds);
            ArrayPool<(double Sum, double SumOfSquares)>.Shared.Return(statistics);
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

    /// <summary>image = clip(x̂0 / b / 2 + 0.5, 0, 1) (contract, "Sampling"); in place is fine.</summary>
    internal static void ToUnitRange(ReadOnlySpan<float> x0, float inputScale, Span<float> destination)
    {
        TensorPrimitives.Divide(x0, inputScale, destination);
        TensorPrimitives.Multiply(destination, 0.5f, destination);
        TensorPrimitives.Add(destination, 0.5f, destination);
        TensorPrimitives.Clamp(destination, 0f, 1f, destination);
    }

    /// <summary>NCHW values in [0, 1] to 8-bit HWC pixels: ×255, round half to even. Overwrites <paramref name="unit"/>.</summary>
    internal static GeneratedImage ToImage(Span<float> unit, ModelSpec spec) => ToImage(unit, spec.Resolution, spec.Channels);

    /// <summary>As above, for a square image of <paramref name="resolution"/> pixels a side.</summary>
    internal static GeneratedImage ToImage(Span<float> unit, int resolution, int channels)
    {
        var plane = resolution * resolution;
        var pixels = new byte[plane * channels];
        TensorPrimitives.Multiply(unit, 255f, unit);
        TensorPrimitives.Round(unit, MidpointRounding.ToEven, unit);
        if (channels == 1)
        {
            TensorPrimitives.ConvertTruncating<float, byte>(unit, pixels); // whole numbers in 0..255: exact
        }
        else
        {
            for (var c = 0; c < channels; c++)
            {
                var source = unit.Slice(c * plane, plane);
                for (var k = 0; k < plane; k++)
                {
                    pixels[k * channels + c] = (byte)source[k];
                }
            }
        }

        return new GeneratedImage(resolution, resolution, channels, pixels);
    }

    private static Schedule Validate(SamplerSettings settings, IReadOnlyList<ImageRequest> images, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(settings);
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

/// <summary>The sampler's arithmetic broke down (NaN): the batch has no valid images to return.</summary>
public sealed class SamplingFailedException(string message) : Exception(message);
