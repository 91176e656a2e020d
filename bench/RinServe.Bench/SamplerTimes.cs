using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using RinServe.Diffusion;
using RinServe.Onnx;

/// <summary>
/// Time per image of each sampler at each step count (issue 24's quality-against-cost table): one image, batch 1, at
/// the model's default guidance (so a guided step is two network rows), the Release build's <see cref="RinSampler.Generate"/>.
/// Every configuration of a round runs before the next round starts, so machine noise hits them alike; medians of rounds.
///   dotnet bench/RinServe.Bench/bin/Release/net10.0/RinServe.Bench.dll --sampler-times --model models/fmnist-64.onnx \
///       --model models/fmnist-1024.onnx --samplers ddim,ddpm,dpmpp-2m --steps 4,6,8,10,15,20,50 --rounds 5 --threads 2
/// Prints one JSON object per line: model, resolution, sampler, steps, guidance, network rows per image, median ms, ms of each round.
/// </summary>
internal static class SamplerTimes
{
    public static void Run(string[] args)
    {
        var models = new List<string>();
        string[] samplers = ["ddim", "ddpm", "dpmpp-2m"];
        int[] steps = [4, 6, 8, 10, 15, 20, 50];
        int rounds = 5, threads = 2;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            var value = args[i + 1];
            switch (args[i])
            {
                case "--model": models.Add(value); break;
                case "--samplers": samplers = value.Split(','); break;
                case "--steps": steps = [.. value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture))]; break;
                case "--rounds": rounds = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(value, CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}' (--model FILE... --samplers a,b --steps 4,10 --rounds R --threads T)");
            }
        }

        foreach (var path in models)
        {
            using var model = ModelLoader.Load(path, new OnnxModelOptions { IntraOpThreads = threads }, NullLogger.Instance);
            var spec = model.Spec;
            var sampler = new RinSampler(model.Denoiser);
            var guidance = spec.SupportsGuidance ? spec.DefaultGuidance : 0f;
            var configs = samplers.SelectMany(s => steps.Select(n => new SamplerSettings(n, Samplers.Get(s).Name, SamplingDefaults.Schedule, guidance))).ToArray();
            var times = configs.ToDictionary(c => c, _ => new List<double>());
            sampler.Generate(configs[0] with { Steps = 2 }, [new ImageRequest(0, 1)]); // warm-up: session, pools, JIT
            for (var r = 0; r < rounds; r++)
            {
                foreach (var config in configs)
                {
                    var start = Stopwatch.GetTimestamp();
                    sampler.Generate(config, [new ImageRequest(r % spec.NumClasses, (ulong)(1000 + r))]);
                    times[config].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
            }

            foreach (var config in configs)
            {
                var sorted = times[config].Order().ToArray();
                var median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
                var rows = config.Steps * (guidance > 0 ? 2 : 1);
                Console.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"{{\"model\": \"{spec.Name}\", \"resolution\": {spec.Resolution}, \"sampler\": \"{config.Sampler}\", \"steps\": {config.Steps}, \"guidance\": {guidance}, \"rows\": {rows}, \"median_ms\": {median:F2}, \"rounds_ms\": [{string.Join(", ", times[config].Select(t => t.ToString("F2", CultureInfo.InvariantCulture)))}]}}"));
            }
        }
    }
}
