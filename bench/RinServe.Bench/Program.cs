using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;
using RinServe.Diffusion;
using RinServe.Onnx;

// Sampler loop overhead = time of one full generation / (steps × time of one bare session.Run),
// same model, batch and session. Rounds interleave both so machine noise hits them alike.
var options = BenchArguments.Parse(args);
var invariant = CultureInfo.InvariantCulture;
Console.WriteLine($"| model | res | batch | sampler | steps | bare run ms (median) | generation ms (median) | overhead (median of rounds) |");
Console.WriteLine("|---|---|---|---|---|---|---|---|");
foreach (var path in options.Models)
{
    using var model = ModelLoader.Load(path, new OnnxModelOptions { IntraOpThreads = options.Threads }, NullLogger.Instance);
    foreach (var sampler in options.Samplers)
    {
        var result = Measure(model, options, sampler);
        Console.WriteLine(string.Create(
            invariant,
            $"| {model.Spec.Name} ({Path.GetFileName(path)}) | {model.Spec.Resolution} | {options.Batch} | {sampler} | {options.Steps} | {result.BareMs:F2} | {result.GenerationMs:F1} | {result.Overhead:F4} |"));
    }
}

static (double BareMs, double GenerationMs, double Overhead) Measure(LoadedModel model, BenchArguments options, SamplerKind sampler)
{
    var spec = model.Spec;
    var batch = options.Batch;
    var session = model.Session;
    var random = new Random(1);
    var x = Enumerable.Range(0, batch * spec.PixelsPerImage).Select(_ => (float)random.NextDouble() * 2 - 1).ToArray();
    var latents = new float[batch * spec.LatentsPerImage];
    using var runOptions = new RunOptions();
    using var xValue = OrtValue.CreateTensorValueFromMemory(x, [batch, spec.Channels, spec.Resolution, spec.Resolution]);
    using var gammaValue = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(0.5f, batch).ToArray(), [batch]);
    using var classValue = OrtValue.CreateTensorValueFromMemory(new long[batch], [batch]);
    using var latentsValue = OrtValue.CreateTensorValueFromMemory(latents, [batch, spec.LatentCount, spec.LatentDim]);
    using var predValue = OrtValue.CreateTensorValueFromMemory(new float[x.Length], [batch, spec.Channels, spec.Resolution, spec.Resolution]);
    using var latentsOutValue = OrtValue.CreateTensorValueFromMemory(new float[latents.Length], [batch, spec.LatentCount, spec.LatentDim]);
    string[] inputNames = ["x", "gamma", "class_id", "latents_in"];
    string[] outputNames = ["pred", "latents_out"];
    OrtValue[] inputs = [xValue, gammaValue, classValue, latentsValue];
    OrtValue[] outputs = [predValue, latentsOutValue];

    var samplerLoop = new RinSampler(model.Denoiser);
    var settings = new SamplerSettings(options.Steps, sampler, "cosine", 0f);
    var requests = Enumerable.Range(0, batch).Select(i => new ImageRequest(i % spec.NumClasses, (ulong)i)).ToArray();

    // Warm both paths once (kernel caches, pools, JIT).
    session.Run(runOptions, inputNames, inputs, outputNames, outputs);
    samplerLoop.Generate(settings, requests);

    var bare = new List<double>();
    var generation = new List<double>();
    var ratios = new List<double>();
    for (var round = 0; round < options.Rounds; round++)
    {
        var stopwatch = Stopwatch.StartNew();
        for (var i = 0; i < options.Steps; i++)
        {
            session.Run(runOptions, inputNames, inputs, outputNames, outputs);
        }

        var bareBlock = stopwatch.Elapsed.TotalMilliseconds;
        stopwatch.Restart();
        samplerLoop.Generate(settings, requests);
        var full = stopwatch.Elapsed.TotalMilliseconds;
        bare.Add(bareBlock / options.Steps);
        generation.Add(full);
        ratios.Add(full / bareBlock);
    }

    return (Median(bare), Median(generation), Median(ratios));
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

/// <summary>Command line of the benchmark.</summary>
internal sealed record BenchArguments(string[] Models, int Steps, int Batch, int Rounds, int Threads, SamplerKind[] Samplers)
{
    public static BenchArguments Parse(string[] args)
    {
        var models = new List<string>();
        int steps = 20, batch = 1, rounds = 7, threads = 0;
        var samplers = new[] { SamplerKind.Ddim, SamplerKind.Ddpm };
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            var value = args[i + 1];
            switch (args[i])
            {
                case "--model":
                    models.Add(value);
                    break;
                case "--steps":
                    steps = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--batch":
                    batch = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--rounds":
                    rounds = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--threads":
                    threads = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}' (--model FILE [--model FILE...] --steps N --batch B --rounds R --threads T)");
            }
        }

        if (models.Count == 0)
        {
            throw new ArgumentException("--model FILE is required (repeat it for several models)");
        }

        return new BenchArguments([.. models], steps, batch, rounds, threads, samplers);
    }
}
