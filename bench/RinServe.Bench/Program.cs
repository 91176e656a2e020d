using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;
using RinServe.Diffusion;
using RinServe.Onnx;

// Sampler loop overhead = time of one full generation / (steps × time of one bare session.Run),
// same model, batch and session. Rounds interleave both so machine noise hits them alike.
if (args is ["--kernels", var elementsText])
{
    KernelTimes(int.Parse(elementsText, CultureInfo.InvariantCulture));
    return;
}

// Issue 24: time per image of each sampler at each step count, the models' own default guidance, batch 1.
if (args is ["--sampler-times", .. var timeArgs])
{
    SamplerTimes.Run(timeArgs);
    return;
}

// The PNG encode of an answer: ImageSharp's default zlib level against the service's.
if (args is ["--png-times", .. var pngFiles])
{
    PngTimes.Run(pngFiles);
    return;
}

// Issue 27: the CUDA path on a GPU host (bench/cuda/README.md).
if (args is ["--cuda-proof", .. var proofArgs])
{
    Environment.ExitCode = CudaProof.Run(proofArgs);
    return;
}

var options = BenchArguments.Parse(args);
var invariant = CultureInfo.InvariantCulture;
Console.WriteLine("| model | res | batch | sampler | steps | bare session.Run ms | IDenoiser.Denoise ms | generation ms | generation / (steps × bare run) |");
Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
foreach (var path in options.Models)
{
    using var model = ModelLoader.Load(path, new OnnxModelOptions { IntraOpThreads = options.Threads }, NullLogger.Instance);
    foreach (var sampler in options.Samplers)
    {
        var result = Measure(model, options, sampler);
        Console.WriteLine(string.Create(
            invariant,
            $"| {model.Spec.Name} ({Path.GetFileName(path)}) | {model.Spec.Resolution} | {options.Batch} | {sampler} | {options.Steps} | {result.BareMs:F2} | {result.DenoiseMs:F2} | {result.GenerationMs:F1} | {result.Overhead:F3} |"));
    }
}

static (double BareMs, double DenoiseMs, double GenerationMs, double Overhead) Measure(LoadedModel model, BenchArguments options, string sampler)
{
    var spec = model.Spec;
    var batch = options.Batch;
    var session = model.Session;
    var settings = new SamplerSettings(options.Steps, sampler, "cosine", 0f);
    var requests = Enumerable.Range(0, batch).Select(i => new ImageRequest(i % spec.NumClasses, (ulong)i)).ToArray();

    // One recorded generation gives the exact inputs of every step, so the bare runs see the same data as the loop.
    var recorder = new RecordingDenoiser(model.Denoiser);
    new RinSampler(recorder).Generate(settings, requests);

    using var runOptions = new RunOptions();
    var (inputNames, outputNames) = (RecordingDenoiser.InputNames, RecordingDenoiser.OutputNames);
    var stepInputs = recorder.StepInputs(batch);
    var (predOrt, latentsOrt) = RecordingDenoiser.Outputs(spec, batch);
    using var predValue = predOrt;
    using var latentsOutValue = latentsOrt;
    OrtValue[] outputs = [predValue, latentsOutValue];
    var pred = new float[batch * spec.PixelsPerImage];
    var latentsOut = new float[batch * spec.LatentsPerImage];

    // Warm every path once (kernel caches, pools, JIT).
    session.Run(runOptions, inputNames, stepInputs[0], outputNames, outputs);
    var timed = new TimingDenoiser(model.Denoiser);
    var samplerLoop = new RinSampler(timed);
    samplerLoop.Generate(settings, requests);

    var bare = new List<double>();
    var denoise = new List<double>();
    var generation = new List<double>();
    var ratios = new List<double>();
    var loopShares = new List<double>();
    var stepShares = new List<double>();
    for (var round = 0; round < options.Rounds; round++)
    {
        // Bare runs and wrapped calls alternate call by call, so load changes on the shared machine hit both.
        var roundBare = new List<double>();
        for (var i = 0; i < stepInputs.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            session.Run(runOptions, inputNames, stepInputs[i], outputNames, outputs);
            var bareMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var c = recorder.Calls[i];
            start = Stopwatch.GetTimestamp();
            model.Denoiser.Denoise(batch, c.X, c.Gamma, c.ClassIds, c.LatentsIn, pred, latentsOut);
            denoise.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            bare.Add(bareMs);
            roundBare.Add(bareMs);
        }

        timed.Reset();
        var begin = Stopwatch.GetTimestamp();
        samplerLoop.Generate(settings, requests);
        var full = Stopwatch.GetElapsedTime(begin).TotalMilliseconds;
        generation.Add(full);
        ratios.Add(full / roundBare.Sum());
        loopShares.Add((full - timed.Milliseconds) / timed.Milliseconds);
        stepShares.Add(timed.BetweenCallsMs / timed.PerCallMs);
    }

    Console.Error.WriteLine(string.Create(
        CultureInfo.InvariantCulture,
        $"{spec.Name} {sampler}: loop time outside the network / network time, median of rounds: {Median(loopShares):F4}; per step (between calls / one call): {Median(stepShares):F4}; direct ratios: {string.Join(" ", ratios.Select(r => r.ToString("F3", CultureInfo.InvariantCulture)))}"));
    foreach (var value in stepInputs.SelectMany(v => v))
    {
        value.Dispose();
    }

    return (Median(bare), Median(denoise), Median(generation), Median(ratios));
}

// Per-step costs of the loop's own passes on one image of the given size, median of 15.
static void KernelTimes(int elements)
{
    var x = Enumerable.Range(0, elements).Select(i => MathF.Sin(i)).ToArray();
    var pred = Enumerable.Range(0, elements).Select(i => MathF.Cos(i)).ToArray();
    var netIn = new float[elements];
    var z = new float[elements];
    var x0 = new float[elements];
    var history = new float[elements];
    var k = new Denoising(Prediction.Eps, 0.6f, 0.8f, 1f, false, 1f, 0f);
    var at = new StepTimes(3, 20, 0.36, 0.49, 0.25);
    var cases = new (string Name, Action Run)[]
    {
        ("statistics", () => StepKernels.Statistics(x)),
        ("normalize (divide into network input)", () => RinSampler.NetworkInput(x, netIn, true, (1, elements))),
        ("copy (what a denoiser does with its input)", () => x.AsSpan().CopyTo(netIn)),
        ("update DDIM", () => Ddim.Instance.Step(at, k, new RowStep(x, pred, default, default, default, default))),
        ("update DDPM", () => Ddpm.LargeVariance.Step(at, k, new RowStep(x, pred, default, z, default, default))),
        ("update DPM-Solver++(2M)", () => DpmSolver2M.Instance.Step(at, k, new RowStep(x, pred, default, default, history, default))),
        ("noise (Philox + Box-Muller)", () => PhiloxNoise.Instance.Fill(1, 3, z)),
    };
    // The whole loop with a network that costs nothing: the sampler's own per-step time.
    var spec = new ModelSpec("null", (int)Math.Sqrt(elements), 1, 10, [.. Enumerable.Range(0, 10).Select(i => i.ToString(CultureInfo.InvariantCulture))], 10, Prediction.Eps, 1f, true, 32, 192);
    var nullLoop = new RinSampler(new NullDenoiser(spec));
    foreach (var sampler in new[] { "ddim", "ddpm", "dpmpp-2m" })
    {
        var settings = new SamplerSettings(20, sampler, "cosine", 0f);
        cases = [.. cases, ($"whole loop, {sampler}, per step (network does nothing)", () => nullLoop.Generate(settings, [new ImageRequest(1, 1)]))];
    }

    foreach (var (name, run) in cases)
    {
        run();
        var times = new List<double>();
        for (var r = 0; r < 15; r++)
        {
            var start = Stopwatch.GetTimestamp();
            run();
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            pred.AsSpan().CopyTo(x); // keep x finite across repeated updates
        }

        var perStep = name.StartsWith("whole loop", StringComparison.Ordinal) ? 20 : 1;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {Median(times) / perStep:F3} ms for {elements} elements"));
    }
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

/// <summary>A network that predicts zero noise and leaves the latents: isolates the loop's own cost.</summary>
internal sealed class NullDenoiser(ModelSpec spec) : IDenoiser
{
    public ModelSpec Spec => spec;

    public void Denoise(
        int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<long> classIds, ReadOnlySpan<float> latentsIn, Span<float> pred, Span<float> latentsOut)
    {
        pred.Clear();
        latentsIn.CopyTo(latentsOut);
    }
}

/// <summary>Times the network: Denoise, or Run when the sampler writes into the lent arrays of a buffered denoiser.</summary>
internal sealed class TimingDenoiser(IDenoiser inner) : IBufferedDenoiser
{
    private long _ticks;
    private long _between;
    private long _lastEnd;
    private int _calls;

    public ModelSpec Spec => inner.Spec;

    public double Milliseconds => Ms(_ticks);

    /// <summary>
    /// The loop's own time per step: the mean gap from the end of one network call to the start of the next (one step's
    /// update and the next step's input), without what a generation does once (x_T, the image out).
    /// </summary>
    public double BetweenCallsMs => _calls > 1 ? Ms(_between) / (_calls - 1) : double.NaN;

    /// <summary>Mean time of one network call.</summary>
    public double PerCallMs => _calls > 0 ? Ms(_ticks) / _calls : double.NaN;

    public void Reset() => (_ticks, _between, _lastEnd, _calls) = (0, 0, 0, 0);

    private static double Ms(long ticks) => TimeSpan.FromTicks(ticks * TimeSpan.TicksPerSecond / Stopwatch.Frequency).TotalMilliseconds;

    private void Count(long start, long end)
    {
        if (_calls > 0)
        {
            _between += start - _lastEnd;
        }

        _ticks += end - start;
        _lastEnd = end;
        _calls++;
    }

    public void Denoise(
        int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<long> classIds, ReadOnlySpan<float> latentsIn, Span<float> pred, Span<float> latentsOut)
    {
        var start = Stopwatch.GetTimestamp();
        inner.Denoise(batch, x, gamma, classIds, latentsIn, pred, latentsOut);
        Count(start, Stopwatch.GetTimestamp());
    }

    public DenoiserBuffers Lend(int batch) => Buffered.Lend(batch);

    public void Run(int batch)
    {
        var start = Stopwatch.GetTimestamp();
        Buffered.Run(batch);
        Count(start, Stopwatch.GetTimestamp());
    }

    private IBufferedDenoiser Buffered => inner as IBufferedDenoiser ?? throw new InvalidOperationException("the timed denoiser lends no arrays");
}

/// <summary>
/// Passes calls through and keeps a copy of the inputs of the first <c>keep</c> calls (all by default), so that bare
/// <c>session.Run</c> calls can replay exactly what the sampler's steps sent.
/// </summary>
internal sealed class RecordingDenoiser(IDenoiser inner, int keep = int.MaxValue) : IDenoiser
{
    public static readonly string[] InputNames = ["x", "gamma", "class_id", "latents_in"];
    public static readonly string[] OutputNames = ["pred", "latents_out"];

    public List<(float[] X, float[] Gamma, long[] ClassIds, float[] LatentsIn)> Calls { get; } = [];

    public ModelSpec Spec => inner.Spec;

    public void Denoise(
        int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<long> classIds, ReadOnlySpan<float> latentsIn, Span<float> pred, Span<float> latentsOut)
    {
        if (Calls.Count < keep)
        {
            Calls.Add((x.ToArray(), gamma.ToArray(), classIds.ToArray(), latentsIn.ToArray()));
        }

        inner.Denoise(batch, x, gamma, classIds, latentsIn, pred, latentsOut);
    }

    /// <summary>Each recorded call's inputs as ORT values over the recorded arrays, in <see cref="InputNames"/> order.</summary>
    public OrtValue[][] StepInputs(int batch)
    {
        long[] imageShape = [batch, Spec.Channels, Spec.Resolution, Spec.Resolution];
        long[] latentShape = [batch, Spec.LatentCount, Spec.LatentDim];
        return Calls.Select(c => new[]
        {
            OrtValue.CreateTensorValueFromMemory(c.X, imageShape),
            OrtValue.CreateTensorValueFromMemory(c.Gamma, [batch]),
            OrtValue.CreateTensorValueFromMemory(c.ClassIds, [batch]),
            OrtValue.CreateTensorValueFromMemory(c.LatentsIn, latentShape),
        }).ToArray();
    }

    /// <summary>Output buffers for one call, in <see cref="OutputNames"/> order.</summary>
    public static (OrtValue Pred, OrtValue Latents) Outputs(ModelSpec spec, int batch) => (
        OrtValue.CreateTensorValueFromMemory(new float[batch * spec.PixelsPerImage], [batch, spec.Channels, spec.Resolution, spec.Resolution]),
        OrtValue.CreateTensorValueFromMemory(new float[batch * spec.LatentsPerImage], [batch, spec.LatentCount, spec.LatentDim]));
}

/// <summary>Command line of the benchmark.</summary>
internal sealed record BenchArguments(string[] Models, int Steps, int Batch, int Rounds, int Threads, string[] Samplers)
{
    public static BenchArguments Parse(string[] args)
    {
        var models = new List<string>();
        int steps = 20, batch = 1, rounds = 7, threads = 0;
        string[] samplers = ["ddim", "ddpm", "dpmpp-2m"];
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
