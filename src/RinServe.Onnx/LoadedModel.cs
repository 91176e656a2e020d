using Microsoft.ML.OnnxRuntime;
using RinServe.Diffusion;

namespace RinServe.Onnx;

/// <summary>
/// One validated model file with its ONNX Runtime session. <see cref="Denoiser"/> takes one caller at a
/// time (workers serialize calls per model); a concurrent call throws <see cref="InvalidOperationException"/>.
/// </summary>
public sealed class LoadedModel : IDisposable
{
    private readonly OnnxDenoiser _denoiser;

    internal LoadedModel(string path, OnnxDenoiser denoiser, string executionProvider, bool trained)
    {
        Path = path;
        _denoiser = denoiser;
        ExecutionProvider = executionProvider;
        Trained = trained;
    }

    public string Path { get; }

    public ModelSpec Spec => _denoiser.Spec;

    /// <summary>The network; one caller at a time.</summary>
    public IDenoiser Denoiser => _denoiser;

    /// <summary>"CUDA" or "CPU": the provider the session actually runs on.</summary>
    public string ExecutionProvider { get; }

    /// <summary><c>rin.trained</c>: false only for shape/performance test models.</summary>
    public bool Trained { get; }

    /// <summary>The raw session, for benchmarks that time a bare run.</summary>
    internal InferenceSession Session => _denoiser.Session;

    public void Dispose() => _denoiser.Dispose();
}
