using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

/// <summary>
/// Mixed open-loop load on the embedded service (in-process queue), two builds side by side in one run: a Poisson stream
/// of 64 px default requests beside a Poisson stream of 1024 px default requests that keeps about half the worker busy.
/// Per build: unloaded latency of each resolution, the 64 px latency and start delay under the mixed load, saturation
/// throughput of each resolution alone, and the count of lost or repeated answers. The arrival times come from fixed
/// seeds, so both builds get the same load.
///
///   dotnet run -c Release --project bench/RinServe.LoadBench -- --mixed 1 --before OLD/RinServe.WebApi.dll \
///       [--seconds 60] [--rate64 2] [--busy 0.5] [--csv runs/mixed.csv]
/// </summary>
internal static class MixedLoad
{
    private const string Small = "fmnist-64", Large = "fmnist-1024";

    public static async Task<int> RunAsync(Dictionary<string, string> options)
    {
        var root = BenchHost.FindRepoRoot();
        var models = Path.GetFullPath(options.GetValueOrDefault("models", "models"), root);
        var seconds = double.Parse(options.GetValueOrDefault("seconds", "60"), CultureInfo.InvariantCulture);
        var rate64 = double.Parse(options.GetValueOrDefault("rate64", "2"), CultureInfo.InvariantCulture);
        var busy = double.Parse(options.GetValueOrDefault("busy", "0.5"), CultureInfo.InvariantCulture);
        var threads = options.GetValueOrDefault("threads", "2");
        var csv = options.GetValueOrDefault("csv", "runs/mixed-load.csv");
        var builds = new List<(string Name, string Dll)>();
        if (options.TryGetValue("before", out var before))
        {
            builds.Add(("before", Path.GetFullPath(before)));
        }
        builds.Add(("after", options.GetValueOrDefault("dll") ?? BenchHost.FindDll(root)));
        double? rate1024 = options.TryGetValue("rate1024", out var r) ? double.Parse(r, CultureInfo.InvariantCulture) : null;

        Console.WriteLine($"# mixed load: {Small} Poisson {rate64}/s beside {Large} Poisson at {busy:P0} of its unloaded service rate, {seconds} s, " +
            $"embedded queue, {threads} intra-op threads, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var rows = new List<string>();
        var lines = new StringBuilder("build,stream,sent_s,latency_ms,start_delay_ms,status,before_queue_ms,run_ms,after_finish_ms\n");
        foreach (var (name, dll) in builds)
        {
            using var service = BenchHost.StartService(dll, root, models, redis: null, threads, new Dictionary<string, string>());
            using var client = new HttpClient { BaseAddress = new Uri(await BenchHost.WaitReadyAsync(service)), Timeout = TimeSpan.FromMinutes(10) };
            for (var i = 0; i < 10; i++) // warm: tiered JIT, pools, both models
            {
                await GenerateAsync(client, Small, 1000 + i);
                await GenerateAsync(client, Large, 1000 + i);
            }
            // Enough unloaded requests that their p99 is not simply the slowest one (the ratio's denominator).
            var alone64 = new List<double>();
            for (var i = 0; i < 200; i++)
            {
                alone64.Add((await GenerateAsync(client, Small, 2000 + i)).Ms);
            }
            var alone1024 = new List<double>();
            for (var i = 0; i < 10; i++)
            {
                alone1024.Add((await GenerateAsync(client, Large, 3000 + i)).Ms);
            }
            rate1024 ??= busy / (BenchHost.Percentile(alone1024, 0.5) / 1000);

            // The 64 px stream by itself first (the same arrival times, no 1024 px requests): what its own bursts cost,
            // so that the mixed run's tail can be told apart from the other model's share.
            var arrivals64 = Arrivals(Small, rate64, seconds, seed: 64).ToList();
            var stream64 = await OpenLoopAsync(client, arrivals64, seedBase: 20_000);
            var streamAlone = stream64.Where(x => x.answer.Status == HttpStatusCode.OK).Select(x => x.answer.Ms).ToList();
            foreach (var (_, at, answer) in stream64)
            {
                lines.Append(CultureInfo.InvariantCulture, $"{name},{Small}-stream-alone,{at:F3},{answer.Ms:F1},NaN,{(int)answer.Status},NaN,NaN,NaN\n");
            }

            var arrivals = arrivals64.Concat(Arrivals(Large, rate1024.Value, seconds, seed: 1024)).OrderBy(a => a.At).ToList();
            var results = await OpenLoopAsync(client, arrivals, seedBase: 10_000);
            // Where each request's time went, by the job's own clock (the same machine's): sent to accepted, accepted to
            // first step (the start delay), first step to finished, finished to the answer's last byte.
            var delays = new Dictionary<string, double>();
            var phases = new Dictionary<string, (double BeforeQueue, double Run, double AfterFinish)>();
            foreach (var (_, _, answer) in results.Where(x => x.answer.Status == HttpStatusCode.OK))
            {
                using var job = JsonDocument.Parse(await client.GetStringAsync($"/jobs/{answer.JobId}"));
                var created = job.RootElement.GetProperty("createdAt").GetDateTimeOffset();
                var started = job.RootElement.GetProperty("startedAt").GetDateTimeOffset();
                var finished = job.RootElement.GetProperty("finishedAt").GetDateTimeOffset();
                delays[answer.JobId!] = (started - created).TotalMilliseconds;
                phases[answer.JobId!] = ((created - answer.Sent).TotalMilliseconds, (finished - started).TotalMilliseconds,
                    (answer.Received - finished).TotalMilliseconds);
            }
            foreach (var (model, at, answer) in results)
            {
                var (beforeQueue, run, afterFinish) = phases.GetValueOrDefault(answer.JobId ?? "", (double.NaN, double.NaN, double.NaN));
                lines.Append(CultureInfo.InvariantCulture, $"{name},{model},{at:F3},{answer.Ms:F1},{delays.GetValueOrDefault(answer.JobId ?? "", double.NaN):F1},{(int)answer.Status},{beforeQueue:F1},{run:F1},{afterFinish:F1}\n");
            }
            var ok = results.Where(x => x.answer.Status == HttpStatusCode.OK).ToList();
            var lost = results.Length - ok.Count;
            var repeated = ok.Count - ok.Select(x => x.answer.JobId).Distinct().Count();
            var small = ok.Where(x => x.Model == Small).Select(x => x.answer.Ms).ToList();
            var large = ok.Where(x => x.Model == Large).Select(x => x.answer.Ms).ToList();
            var smallDelay = ok.Where(x => x.Model == Small).Select(x => delays[x.answer.JobId!]).ToList();

            var sat64 = await SaturateAsync(client, Small, clients: 8, images: 160);
            var sat1024 = await SaturateAsync(client, Large, clients: 8, images: 40);
            service.Kill(entireProcessTree: true);
            await service.WaitForExitAsync();

            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {BenchHost.Percentile(alone64, 0.5):F0} / {BenchHost.Percentile(alone64, 0.99):F0} | {BenchHost.Percentile(alone1024, 0.5):F0} | " +
                $"{small.Count} | {BenchHost.Percentile(small, 0.5):F0} | {BenchHost.Percentile(small, 0.99):F0} | " +
                $"{BenchHost.Percentile(small, 0.99) / BenchHost.Percentile(alone64, 0.99):F2} | {BenchHost.Percentile(streamAlone, 0.99):F0} | " +
                $"{BenchHost.Percentile(small, 0.99) / BenchHost.Percentile(streamAlone, 0.99):F2} | {BenchHost.Percentile(smallDelay, 0.5):F0} | {BenchHost.Percentile(smallDelay, 0.99):F0} | " +
                $"{large.Count}: {BenchHost.Percentile(large, 0.5):F0} / {BenchHost.Percentile(large, 0.99):F0} | {sat64:F1} | {sat1024:F2} | {lost} | {repeated} |"));
        }
        Console.WriteLine($"# 1024 px arrivals: {rate1024:F2}/s");
        Console.WriteLine();
        Console.WriteLine("| build | 64 px alone p50 / p99 ms | 1024 px alone p50 ms | 64 px requests under load | 64 px p50 ms | 64 px p99 ms | p99 / alone p99 | 64 px stream without the 1024 px one: p99 ms | p99 / that p99 | 64 px start delay p50 ms | start delay p99 ms | 1024 px under load: n, p50 / p99 ms | 64 px alone saturated images/s | 1024 px alone saturated images/s | lost | repeated |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        rows.ForEach(Console.WriteLine);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(csv, root))!);
        await File.WriteAllTextAsync(Path.GetFullPath(csv, root), lines.ToString());
        Console.WriteLine($"# per request: {csv}");
        return 0;
    }

    /// <summary>Sends each request at its arrival time (open loop: nobody waits for an answer to send the next).</summary>
    private static async Task<(string Model, double At, (double Ms, HttpStatusCode Status, string? JobId, DateTimeOffset Sent, DateTimeOffset Received) answer)[]> OpenLoopAsync(
        HttpClient client, List<(string Model, double At)> arrivals, int seedBase)
    {
        var clock = Stopwatch.StartNew();
        return await Task.WhenAll(arrivals.Select(async (a, k) =>
        {
            var wait = a.At - clock.Elapsed.TotalSeconds;
            if (wait > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait));
            }
            var answer = await GenerateAsync(client, a.Model, seedBase + k, throwOnError: false);
            return (a.Model, a.At, answer);
        }));
    }

    private static IEnumerable<(string Model, double At)> Arrivals(string model, double rate, double seconds, int seed)
    {
        var random = new Random(seed);
        for (var t = -Math.Log(1 - random.NextDouble()) / rate; t < seconds; t += -Math.Log(1 - random.NextDouble()) / rate)
        {
            yield return (model, t);
        }
    }

    private static async Task<(double Ms, HttpStatusCode Status, string? JobId, DateTimeOffset Sent, DateTimeOffset Received)> GenerateAsync(
        HttpClient client, string model, int seed, bool throwOnError = true)
    {
        var sent = DateTimeOffset.UtcNow;
        var started = Stopwatch.GetTimestamp();
        using var response = await client.PostAsync($"/generate?model={model}&class={seed % 10}&seed={seed}", null);
        await response.Content.ReadAsByteArrayAsync();
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var received = DateTimeOffset.UtcNow;
        if (throwOnError && response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"generate answered {(int)response.StatusCode}");
        }
        return (ms, response.StatusCode, response.Headers.TryGetValues("X-Job-Id", out var id) ? id.Single() : null, sent, received);
    }

    /// <summary>Images per second with <paramref name="clients"/> closed-loop clients of one model.</summary>
    private static async Task<double> SaturateAsync(HttpClient client, string model, int clients, int images)
    {
        var next = -1;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            int seed;
            while ((seed = Interlocked.Increment(ref next)) < images)
            {
                await GenerateAsync(client, model, 50_000 + seed);
            }
        }));
        return images / watch.Elapsed.TotalSeconds;
    }
}
