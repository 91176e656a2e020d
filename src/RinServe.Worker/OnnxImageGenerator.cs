using RinServe.Diffusion;
using RinServe.Jobs;
using RinServe.Onnx;

namespace RinServe.Worker;

/// <summary>Runs RinSampler over the loaded ONNX models; one batch at a time per model, as the denoiser requires.</summary>
public sealed class OnnxImageGenerator : IImageGenerator
{
    private readonly Dictionary<string, (RinSampler Sampler, Lock Gate)> _samplers;

    public OnnxImageGenerator(ModelRegistry registry)
    {
        _samplers = registry.Models.ToDictionary(m => m.Spec.Name, m => (new RinSampler(m.Denoiser), new Lock()), StringComparer.Ordinal);
        Models = [.. registry.Models.Select(m => m.Spec.Name)];
    }

    public IReadOnlyList<string> Models { get; }

    public IReadOnlyList<GeneratedImage> Generate(
        string model, SamplerSettings settings, IReadOnlyList<ImageRequest> requests, Action<StepProgress>? onStep, IPreviewSink? previews, CancellationToken ct)
    {
        if (!_samplers.TryGetValue(model, out var entry))
        {
            throw new InvalidOperationException($"model '{model}' is not loaded in this worker");
        }
        lock (entry.Gate)
        {
            return entry.Sampler.Generate(settings, requests, onStep, previews, ct);
        }
    }
}
