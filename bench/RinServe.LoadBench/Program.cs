// Service throughput benchmark. Starts its own redis-server on a free loopback port, then for each
// MaxBatch setting one RinServe process (role all, jobs through Redis), and drives it with closed-loop
// HTTP clients: each client POSTs /generate (waiting for the image) and posts again when it arrives.
//
//   dotnet build -c Release src/RinServe.WebApi
//   dotnet run -c Release --project bench/RinServe.LoadBench -- --models models --steps 20 --images 24
//
// Options: --models DIR (default models), --steps N (20), --images N per level (24), --batches 1,8,
// --concurrency 1,4,8, --threads N (Onnx:IntraOpThreads, 2), --latency-requests N (400), --dll PATH.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using RinServe.Testing;

var options = BenchHost.ParseArgs(args);
if (options.ContainsKey("mixed"))
{
    return await MixedLoad.RunAsync(options);
}
var root = BenchHost.FindRepoRoot();
var models = Path.GetFullPath(options.GetValueOrDefault("models", "models"), root);
var steps = int.Parse(options.GetValueOrDefault("steps", "20"), CultureInfo.InvariantCulture);
var imagesPerLevel = int.Parse(options.GetValueOrDefault("images", "24"), CultureInfo.InvariantCulture);
var batches = options.GetValueOrDefault("batches", "1,8").Split(',').Select(int.Parse).ToArray();
var levels = options.GetValueOrDefault("concurrency", "1,4,8").Split(',').Select(int.Parse).ToArray();
var threads = options.GetValueOrDefault("threads", "2");
var latencyRequests = int.Parse(options.GetValueOrDefault("latency-requests", "400"), CultureInfo.InvariantCulture);
var dll = options.GetValueOrDefault("dll") ?? BenchHost.FindDll(root);

await using var redis = await RedisServer.StartAsync();
Console.WriteLine($"# RinServe load bench: models={models} steps={steps} images/level={imagesPerLevel} intra-op threads={threads} redis port {redis.Port}");
Console.WriteLine($"# machine: {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine();
Console.WriteLine("| MaxBatch | concurrency | images | seconds | images/s | request p50 ms | request p99 ms |");
Console.WriteLine("|---|---|---|---|---|---|---|");

var latencyLines = new List<string>();
foreach (var maxBatch in batches)
{
    using var service = BenchHost.StartService(dll, root, models, redis.ConnectionString, threads, new Dictionary<string, string>
    {
        ["Jobs__KeyPrefix"] = $"bench{maxBatch}:",
        ["Workers__MaxBatch"] = maxBatch.ToString(CultureInfo.InvariantCulture),
    });
    var baseUrl = await BenchHost.WaitReadyAsync(service);
    using var client = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromMinutes(5) };
    var model = await BenchHost.FirstModelAsync(client);

    // Warm-up: first calls pay for JIT and ONNX Runtime kernel setup.
    await RunLevelAsync(client, model, steps, 4, 8);
    await EnqueueLatencyAsync(client, model, 50, 4);
    foreach (var concurrency in levels)
    {
        var (elapsed, latencies) = await RunLevelAsync(client, model, steps, concurrency, imagesPerLevel);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {maxBatch} | {concurrency} | {imagesPerLevel} | {elapsed.TotalSeconds:F2} | {imagesPerLevel / elapsed.TotalSeconds:F2} | {BenchHost.Percentile(latencies, 0.5):F0} | {BenchHost.Percentile(latencies, 0.99):F0} |"));
    }

    // Enqueue latency: POST with Prefer: respond-async (validate + Lua enqueue in Redis + 202), 4 clients.
    var enqueue = await EnqueueLatencyAsync(client, model, latencyRequests, 4);
    latencyLines.Add(string.Create(CultureInfo.InvariantCulture,
        $"| {maxBatch} | {latencyRequests} | {BenchHost.Percentile(enqueue, 0.5):F2} | {BenchHost.Percentile(enqueue, 0.99):F2} |"));
    service.Kill(entireProcessTree: true);
    await service.WaitForExitAsync();
}

Console.WriteLine();
Console.WriteLine("Enqueue latency through Redis (POST /generate with Prefer: respond-async, 4 concurrent clients, steps=1):");
Console.WriteLine();
Console.WriteLine("| MaxBatch | requests | p50 ms | p99 ms |");
Console.WriteLine("|---|---|---|---|");
latencyLines.ForEach(Console.WriteLine);
return 0;

static async Task<(TimeSpan Elapsed, List<double> Latencies)> RunLevelAsync(HttpClient client, string model, int steps, int concurrency, int images)
{
    var next = -1;
    var latencies = new List<double>();
    var watch = Stopwatch.StartNew();
    var clients = Enumerable.Range(0, concurrency).Select(async _ =>
    {
        int seed;
        while ((seed = Interlocked.Increment(ref next)) < images)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.PostAsync($"/generate?model={model}&class={seed % 10}&steps={steps}&seed={seed}", null);
            await response.Content.ReadAsByteArrayAsync();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"generate answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }
            lock (latencies)
            {
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
    }).ToList();
    await Task.WhenAll(clients);
    return (watch.Elapsed, latencies);
}

static async Task<List<double>> EnqueueLatencyAsync(HttpClient client, string model, int requests, int concurrency)
{
    var next = -1;
    var latencies = new List<double>();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        while (Interlocked.Increment(ref next) < requests)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/generate?model={model}&class=1&steps=1");
            request.Headers.Add("Prefer", "respond-async");
            var started = Stopwatch.GetTimestamp();
            using var response = await client.SendAsync(request);
            var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"enqueue answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }
            lock (latencies)
            {
                latencies.Add(ms);
            }
        }
    }));
    return latencies;
}

