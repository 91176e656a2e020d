using System.Buffers;

namespace RinServe.Diffusion;

/// <summary>
/// The working memory of one sampling call, rented from the shared pools and returned on dispose:
/// x_t of each image, the network's batch (twice the images with guidance: conditional half, then
/// null-class half) in and out, both latent buffers (swapped every step), and the per-image Σx, Σx².
/// </summary>
internal sealed class SamplerBuffers : IDisposable
{
    private readonly float[] _x;
    private readonly float[] _netIn;
    private readonly float[] _netPred;
    private readonly float[] _gammas;
    private readonly long[] _classes;
    private float[] _latentsIn;
    private float[] _latentsOut;

    public SamplerBuffers(int batch, bool guided, ModelSpec spec)
    {
        Batch = batch;
        NetBatch = guided ? 2 * batch : batch;
        PerImage = spec.PixelsPerImage;
        PerLatents = spec.LatentsPerImage;
        var floats = ArrayPool<float>.Shared;
        _x = floats.Rent(batch * PerImage);
        _netIn = floats.Rent(NetBatch * PerImage);
        _netPred = floats.Rent(NetBatch * PerImage);
        StepNoise = floats.Rent(batch * PerImage);
        _latentsIn = floats.Rent(NetBatch * PerLatents);
        _latentsOut = floats.Rent(NetBatch * PerLatents);
        _gammas = floats.Rent(NetBatch);
        _classes = ArrayPool<long>.Shared.Rent(NetBatch);
        Statistics = ArrayPool<(double Sum, double SumOfSquares)>.Shared.Rent(batch);
        LatentsIn.Clear(); // latent self-conditioning starts from zeros (RIN paper §3.2)
    }

    public int Batch { get; }

    public int NetBatch { get; }

    /// <summary>Classifier-free guidance: the network's batch holds a null-class copy of every image.</summary>
    public bool Guided => NetBatch > Batch;

    public int PerImage { get; }

    public int PerLatents { get; }

    /// <summary>The DDPM step noise z of the whole batch (filled by <see cref="NoiseAhead"/>).</summary>
    public float[] StepNoise { get; }

    /// <summary>Σx and Σx² of each image's x_t, for the next step's input normalization.</summary>
    public (double Sum, double SumOfSquares)[] Statistics { get; }

    public Span<float> X => _x.AsSpan(0, Batch * PerImage);

    public Span<float> Noise => StepNoise.AsSpan(0, Batch * PerImage);

    public Span<float> NetIn => _netIn.AsSpan(0, NetBatch * PerImage);

    public Span<float> NetPred => _netPred.AsSpan(0, NetBatch * PerImage);

    public Span<float> Gammas => _gammas.AsSpan(0, NetBatch);

    public Span<long> Classes => _classes.AsSpan(0, NetBatch);

    public Span<float> LatentsIn => _latentsIn.AsSpan(0, NetBatch * PerLatents);

    public Span<float> LatentsOut => _latentsOut.AsSpan(0, NetBatch * PerLatents);

    public Span<float> Image(Span<float> batch, int b) => batch.Slice(b * PerImage, PerImage);

    /// <summary>Each example (and each guidance half) gets back its own latents for the next step.</summary>
    public void SwapLatents() => (_latentsIn, _latentsOut) = (_latentsOut, _latentsIn);

    public void Dispose()
    {
        var floats = ArrayPool<float>.Shared;
        floats.Return(_x);
        floats.Return(_netIn);
        floats.Return(_netPred);
        floats.Return(StepNoise);
        floats.Return(_latentsIn);
        floats.Return(_latentsOut);
        floats.Return(_gammas);
        ArrayPool<long>.Shared.Return(_classes);
        ArrayPool<(double Sum, double SumOfSquares)>.Shared.Return(Statistics);
    }
}
