using Microsoft.ML.OnnxRuntime;
using RinServe.Diffusion;

namespace RinServe.Onnx;

/// <summary>
/// The RIN network as an ONNX Runtime session. Not thread-safe: one caller at a time (workers serialize
/// calls per model); a concurrent call throws instead of corrupting the shared buffers.
/// Inputs and outputs live in pinned arrays bound once per batch size through an <see cref="OrtIoBinding"/>,
/// so a step copies spans in and out and allocates nothing; or, through <see cref="IBufferedDenoiser"/>, the sampler
/// writes into and reads from those arrays itself and nothing is copied.
/// </summary>
internal sealed class OnnxDenoiser : IBufferedDenoiser, IDisposable
{
    // Batch sizes kept bound at once; dynamic batching uses few distinct sizes.
    private const int MaxBoundBatchSizes = 8;

    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly Dictionary<int, BatchBinding> _bindings = [];
    private float[] _x = [];
    private float[] _gamma = [];
    private long[] _classIds = [];
    private float[] _latentsIn = [];
    private float[] _pred = [];
    private float[] _latentsOut = [];
    private int _busy;
    private bool _disposed;

    public OnnxDenoiser(InferenceSession session, ModelSpec spec)
    {
        _session = session;
        Spec = spec;
    }

    public ModelSpec Spec { get; }

    internal InferenceSession Session => _session;

    public void Denoise(
        int batch,
        ReadOnlySpan<float> x,
        ReadOnlySpan<float> gamma,
        ReadOnlySpan<long> classIds,
        ReadOnlySpan<float> latentsIn,
        Span<float> pred,
        Span<float> latentsOut)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var perImage = Spec.PixelsPerImage;
        var perLatents = Spec.LatentsPerImage;
        if (batch < 1 || x.Length != batch * perImage || gamma.Length != batch || classIds.Length != batch
            || latentsIn.Length != batch * perLatents || pred.Length != batch * perImage || latentsOut.Length != batch * perLatents)
        {
            throw new ArgumentException($"spans do not match batch {batch} of model '{Spec.Name}'");
        }

        if (Interlocked.Exchange(ref _busy, 1) != 0)
        {
            throw new InvalidOperationException($"model '{Spec.Name}' is already running a call; callers must serialize Denoise");
        }

        try
        {
            var binding = Bind(batch);
            x.CopyTo(_x);
            gamma.CopyTo(_gamma);
            classIds.CopyTo(_classIds);
            latentsIn.CopyTo(_latentsIn);
            _session.RunWithBinding(_runOptions, binding.IoBinding);
            _pred.AsSpan(0, pred.Length).CopyTo(pred);
            _latentsOut.AsSpan(0, latentsOut.Length).CopyTo(latentsOut);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    public DenoiserBuffers Lend(int batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        Bind(batch);
        int images = batch * Spec.PixelsPerImage, latents = batch * Spec.LatentsPerImage;
        return new DenoiserBuffers(
            _x.AsSpan(0, images), _gamma.AsSpan(0, batch), _classIds.AsSpan(0, batch), _latentsIn.AsSpan(0, latents),
            _pred.AsSpan(0, images), _latentsOut.AsSpan(0, latents));
    }

    public void Run(int batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_bindings.TryGetValue(batch, out var binding))
        {
            throw new InvalidOperationException($"no buffers were lent for a batch of {batch}");
        }

        if (Interlocked.Exchange(ref _busy, 1) != 0)
        {
            throw new InvalidOperationException($"model '{Spec.Name}' is already running a call; callers must serialize Denoise");
        }

        try
        {
            _session.RunWithBinding(_runOptions, binding.IoBinding);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private BatchBinding Bind(int batch)
    {
        if (_bindings.TryGetValue(batch, out var binding))
        {
            return binding;
        }

        if (batch * Spec.PixelsPerImage > _x.Length)
        {
            // The arrays grow to the largest batch seen; every binding pins them, so rebind all.
            ReleaseBindings();
            _x = new float[batch * Spec.PixelsPerImage];
            _pred = new float[batch * Spec.PixelsPerImage];
            _gamma = new float[batch];
            _classIds = new long[batch];
            _latentsIn = new float[batch * Spec.LatentsPerImage];
            _latentsOut = new float[batch * Spec.LatentsPerImage];
        }
        else if (_bindings.Count >= MaxBoundBatchSizes)
        {
            ReleaseBindings();
        }

        binding = new BatchBinding(_session, batch, Spec, this);
        _bindings[batch] = binding;
        return binding;
    }

    private void ReleaseBindings()
    {
        foreach (var binding in _bindings.Values)
        {
            binding.Dispose();
        }

        _bindings.Clear();
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        ReleaseBindings();
        _runOptions.Dispose();
        _session.Dispose();
    }

    /// <summary>OrtValues over the first <c>batch</c> items of the shared arrays, bound to the graph's names.</summary>
    private sealed class BatchBinding : IDisposable
    {
        private readonly OrtValue[] _values;

        public BatchBinding(InferenceSession session, int batch, ModelSpec spec, OnnxDenoiser owner)
        {
            long[] image = [batch, spec.Channels, spec.Resolution, spec.Resolution];
            long[] latents = [batch, spec.LatentCount, spec.LatentDim];
            var memory = OrtMemoryInfo.DefaultInstance;
            _values =
            [
                OrtValue.CreateTensorValueFromMemory(memory, owner._x.AsMemory(0, batch * spec.PixelsPerImage), image),
                OrtValue.CreateTensorValueFromMemory(memory, owner._gamma.AsMemory(0, batch), [batch]),
                OrtValue.CreateTensorValueFromMemory(memory, owner._classIds.AsMemory(0, batch), [batch]),
                OrtValue.CreateTensorValueFromMemory(memory, owner._latentsIn.AsMemory(0, batch * spec.LatentsPerImage), latents),
                OrtValue.CreateTensorValueFromMemory(memory, owner._pred.AsMemory(0, batch * spec.PixelsPerImage), image),
                OrtValue.CreateTensorValueFromMemory(memory, owner._latentsOut.AsMemory(0, batch * spec.LatentsPerImage), latents),
            ];
            IoBinding = session.CreateIoBinding();
            IoBinding.BindInput(ModelContract.X, _values[0]);
            IoBinding.BindInput(ModelContract.Gamma, _values[1]);
            IoBinding.BindInput(ModelContract.ClassId, _values[2]);
            IoBinding.BindInput(ModelContract.LatentsIn, _values[3]);
            IoBinding.BindOutput(ModelContract.Pred, _values[4]);
            IoBinding.BindOutput(ModelContract.LatentsOut, _values[5]);
        }

        public OrtIoBinding IoBinding { get; }

        public void Dispose()
        {
            IoBinding.Dispose();
            foreach (var value in _values)
            {
                value.Dispose();
            }
        }
    }
}
