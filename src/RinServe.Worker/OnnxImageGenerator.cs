using RinServe.Diffusion;
using RinServe.Jobs;
using RinServe.Onnx;

namespace RinServe.Worker;

/// <summary>The loaded ONNX models as row engines (RinSampler rows, one RowStepper per engine); one step at a time per model, as the denoiser requires.</summary>
public sealed class OnnxImageGenerator : IImageGenerator
{
    private readonly Dictionary<string, (RinSampler Sampler, Lock Gate)> _samplers;

    public OnnxImageGenerator(ModelRegistry registry)
    {
        _samplers = registry.Models.ToDictionary(m => m.Spec.Name, m => (new RinSampler(m.Denoiser), new Lock()), StringComparer.Ordinal);
        Models = [.. registry.Models.Select(m => m.Spec.Name)];
    }

    public IReadOnlyList<string> Models { get; }

    public IRowEngine Open(string model) =>
        _samplers.TryGetValue(model, out var entry)
            ? new Engine(entry.Sampler, entry.Gate)
            : throw new InvalidOperationException($"model '{model}' is not loaded in this worker");

    private sealed class Engine(RinSampler sampler, Lock gate) : IRowEngine
    {
        private readonly RowStepper _stepper = sampler.CreateStepper();

        public SampleRow CreateRow(ImageRequest image, SamplerSettings settings) => sampler.CreateRow(image, settings);

        public void Step(IReadOnlyList<SampleRow> rows, IPreviewSink? previews)
        {
            lock (gate) // the model's session runs one call at a time
            {
                _stepper.Step(rows, previews);
            }
        }

        public void Dispose() => _stepper.Dispose();
    }
}
