using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using RinServe.Diffusion;
using RinServe.Onnx;

/// <summary>
/// <c>Onnx:StopSpinningAfterRun</c> on against off, in one process: each model loaded twice, one 20-step generation of
/// each sampler (batch 1, unguided) alternating between the two sessions, round by round. Prints the median generation
/// time of each, the median of the pairwise ratios, and the loop's own time per step as a share of one network call.
/// </summary>
internal static class SpinTimes
{
    public static void Run(string[] args)
    {
        var options = BenchArguments.Parse(args);
        Console.WriteLine("| model | res | sampler | spinning stops: generation ms | loop per step / network call | spinning goes on: generation ms | loop per step / network call | stops / goes on, median of pairs |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var path in options.Models)
        {
            LoadedModel Load(bool stop) => ModelLoader.Load(
                path, new OnnxModelOptions { IntraOpThreads = options.Threads, StopSpinningAfterRun = stop }, NullLogger.Instance);
            using var stops = Load(stop: true);
            using var spins = Load(stop: false);
            var loops = new[] { stops, spins }.Select(m => new TimingDenoiser(m.Denoiser)).ToArray();
            foreach (var sampler in options.Samplers)
            {
                var settings = new SamplerSettings(options.Steps, sampler, "cosine", 0f);
                ImageRequest[] request = [new ImageRequest(0, 1)];
                var times = new[] { new List<double>(), new List<double>() };
                var shares = new[] { new List<double>(), new List<double>() };
                var ratios = new List<double>();
                foreach (var loop in loops)
                {
                    new RinSampler(loop).Generate(settings, request); // warm
                }

                for (var round = 0; round < options.Rounds; round++)
                {
                    for (var k = 0; k < 2; k++)
                    {
                        var which = (round + k) % 2; // who goes first alternates too
                        loops[which].Reset();
                        var start = Stopwatch.GetTimestamp();
                        new RinSampler(loops[which]).Generate(settings, request);
                        times[which].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                        shares[which].Add(loops[which].BetweenCallsMs / loops[which].PerCallMs);
                    }

                    ratios.Add(times[0][^1] / times[1][^1]);
                }

                Console.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {stops.Spec.Name} | {stops.Spec.Resolution} | {sampler} | {Median(times[0]):F1} | {Median(shares[0]):F3} | {Median(times[1]):F1} | {Median(shares[1]):F3} | {Median(ratios):F3} |"));
            }
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
