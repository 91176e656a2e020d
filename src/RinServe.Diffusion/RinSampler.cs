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

            ImageOutput.ToUnitRange(finalX0, spec.InputScale, finalX0);
            var result = new GeneratedImage[images.Count];
            for (var b = 0; b < images.Count; b++)
            {
                result[b] = ImageOutput.ToImage(finalX0.Slice(b * perImage, perImage), spec);
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
        var schedule = SamplerChecks.Validate(settings, images, spec);
        if (finalX0.Length != images.Count * spec.PixelsPerImage)
        {
            throw new ArgumentException($"finalX0 must hold {images.Count * spec.PixelsPerImage} values", nameof(finalX0));
        }

        using var buffers = new SamplerBuffers(images.Count, settings.Guidance > 0, spec);
        StartFromNoise(images, buffers, spec);
        var stochastic = settings.Sampler != SamplerKind.Ddim;
        using var noiseAhead = stochastic ? new NoiseAhead(_noise, images, buffers.StepNoise, spec.PixelsPerImage) : null;
        for (var i = 0; i < settings.Steps; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var coefficients = StepCoefficients.At(i, schedule, settings, spec);
            Normalize(buffers, firstStep: i == 0, spec.NormalizeInput);
            buffers.Gammas.Fill(coefficients.Gamma);
            noiseAhead?.Start(i);
            _denoiser.Denoise(buffers.NetBatch, buffers.NetIn, buffers.Gammas, buffers.Classes, buffers.LatentsIn, buffers.NetPred, buffers.LatentsOut);
            buffers.SwapLatents();
            noiseAhead?.Wait();

            // x̂0 is only read after the last step (and by an observer, or for a preview that was asked for).
            Update(buffers, coefficients, i + 1, finalX0, readX0: observer is not null || i == settings.Steps - 1, previews, spec);
            observer?.Invoke(i, buffers.X, finalX0);
            onStep?.Invoke(new StepProgress(i + 1, settings.Steps));
        }
    }

    /// <summary>x_T: each image's seeded noise; the class of each row of the network's batch (the null class for the guidance half).</summary>
    private void StartFromNoise(IReadOnlyList<ImageRequest> images, SamplerBuffers buffers, ModelSpec spec)
    {
        var classes = buffers.Classes;
        for (var b = 0; b < buffers.Batch; b++)
        {
            _noise.Fill(images[b].Seed, INoiseSource.InitialStep, buffers.Image(buffers.X, b));
            classes[b] = images[b].ClassId;
            if (buffers.Guided)
            {
                classes[buffers.Batch + b] = spec.NullClass!.Value;
            }
        }
    }

    /// <summary>The network's copy of x_t, variance-normalized per image (only that copy: contract, "Sampling"), twice with guidance.</summary>
    private static void Normalize(SamplerBuffers buffers, bool firstStep, bool normalize)
    {
        var x = buffers.X;
        var netIn = buffers.NetIn;
        var statistics = buffers.Statistics;
        for (var b = 0; b < buffers.Batch; b++)
        {
            var image = buffers.Image(x, b);
            if (firstStep)
            {
                statistics[b] = StepKernels.Statistics(image);
            }

            NetworkInput(image, buffers.Image(netIn, b), normalize, statistics[b]);
        }

        if (buffers.Guided)
        {
            netIn[..(buffers.Batch * buffers.PerImage)].CopyTo(netIn[(buffers.Batch * buffers.PerImage)..]);
        }
    }

    /// <summary>
    /// The update of every image from the network's prediction (guidance mix, x̂0, clip, DDIM or DDPM step),
    /// keeping Σx, Σx² for the next normalization; x̂0 is written where it is read, and previews taken.
    /// </summary>
    private static void Update(
        SamplerBuffers buffers, in StepCoefficients coefficients, int step, Span<float> x0, bool readX0, IPreviewSink? previews, ModelSpec spec)
    {
        var x = buffers.X;
        var pred = buffers.NetPred;
        var noise = buffers.Noise;
        for (var b = 0; b < buffers.Batch; b++)
        {
            var preview = previews is not null && previews.Wants(step, b);
            var imageX0 = readX0 || preview ? buffers.Image(x0, b) : Span<float>.Empty;
            buffers.Statistics[b] = StepKernels.Update(
                coefficients,
                buffers.Image(x, b),
                buffers.Image(pred, b),
                coefficients.Guided ? buffers.Image(pred, buffers.Batch + b) : ReadOnlySpan<float>.Empty,
                coefficients.Stochastic ? buffers.Image(noise, b) : Span<float>.Empty,
                imageX0);
            if (preview)
            {
                previews!.Take(step, b, X0Preview.Downsample(imageX0, spec));
            }
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
